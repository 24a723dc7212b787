import ArgumentParser
import Catalog
import Foundation

struct ImportMetadataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-metadata",
        abstract: "Import a metadata table into the catalog: the study's, or a lab's own with any header.",
        discussion: """
        A lab's table (CSV, TSV or ';'-separated, found from the header line) maps its columns
        onto fields with --map 'Header=field[:unit]' or a --mapping file
        ({"columns": {"Header": "field[:unit]"}, "key": ["Header", ...]}); a column named after
        a field maps itself ('Defocus [nm]' -> defocus in nm). A column's unit (its mapping's,
        else the one in its header's brackets) is converted to the field's: A, pm, nm, um;
        x, kx. A frame is found by its key: folder + file (columns mapped to folder and file;
        new frames are created), else path (absolute or relative to the table), else file.
        Unmapped columns are listed, or kept as text fields with --keep-unmapped. Every value
        is checked first; a bad one imports nothing and the error names the file, line and
        column. Changed values are listed; each value records its table and line as source.

        The study's table imports with no mapping. Its header:
          \(MetadataImporter.header.joined(separator: ","))
        Dates are MM/DD/YY. Magnification, dose rate and exposure are read from the file names
        (YYYYMMDD_<Material>_<Support>_<Mag>kx_<R>e_<T>s_<NN>.dm3); a row whose dose differs from
        rate x exposure by more than 1% is imported with a warning. The whole table is checked
        first and written in one transaction: any bad row imports nothing, and the error names
        the line and the column. Re-importing the same table changes nothing; changed rows are
        updated and listed.

        Examples:
          hrtem import-metadata ../shared/reference/Dataset_metadata.csv
          hrtem import-metadata --data /scratch/hrtem Dataset_metadata.csv
          hrtem import-metadata --from study      (downloads the study's published table first)
          hrtem import-metadata lab.csv --map 'Image=file' --map 'Session=folder' --map 'Defocus [A]=defocus:A'
          hrtem import-metadata lab.tsv --mapping lab-mapping.json --keep-unmapped
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The metadata table (CSV).")
    var file: String?

    @Option(help: "Download the table first: `study` (the study's GitHub repository), or any mirror with a metadataPath.")
    var from: String?

    @Option(help: "Map a column onto a field: 'Header=field' or 'Header=field:unit' (repeatable).")
    var map: [String] = []

    @Option(help: "A JSON mapping file: {\"columns\": {\"Header\": \"field[:unit]\"}, \"key\": [\"Header\", ...]}.")
    var mapping: String?

    @Flag(help: "Keep columns no field takes, as text fields named after them.")
    var keepUnmapped = false

    func validate() throws {
        if (file == nil) == (from == nil) { throw ValidationError("give either a FILE or --from study") }
    }

    func tableMapping() throws -> TableMapping {
        var result = try mapping.map { try TableMapping.read(from: URL(fileURLWithPath: $0)) } ?? TableMapping()
        do { for entry in map { try result.add(entry) } } catch { throw ValidationError("\(error)") }
        return result
    }

    func run() throws {
        var url = URL(fileURLWithPath: file ?? "")
        var sourceName = url.lastPathComponent
        if let from {
            // The stored copy is named by its digest; the catalog keeps the table's own name.
            (url, sourceName) = try fetchMetadataTable(from: from, folder: data.folder)
        }
        let file = url.path
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch {
            throw ValidationError("cannot read \(file): \(error.localizedDescription)")
        }
        let store = try CatalogStore(folder: data.folder)
        let tableMapping = try tableMapping()
        if !tableMapping.isEmpty || keepUnmapped || !TableImporter.hasStudyHeader(bytes) {
            let report = try TableImporter.importTable(bytes, source: sourceName, folder: url.deletingLastPathComponent(),
                                                       mapping: tableMapping, keepUnmapped: keepUnmapped, into: store)
            print(report.summary)
            for line in report.changed { print("  changed: \(line)") }
            return
        }
        let report = try MetadataImporter.importTable(bytes, source: sourceName, into: store)
        for warning in report.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        print(report.summary)
        for line in report.changeDescriptions { print("  changed: \(line)") }
    }
}
