import ArgumentParser
import Catalog
import Foundation

struct ImportMetadataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-metadata",
        abstract: "Import the study's metadata table (Dataset_metadata.csv) into the catalog.",
        discussion: """
        The table must have the study's header:
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
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The metadata table (CSV).")
    var file: String?

    @Option(help: "Download the table first: `study` (the study's GitHub repository), or any mirror with a metadataPath.")
    var from: String?

    func validate() throws {
        if (file == nil) == (from == nil) { throw ValidationError("give either a FILE or --from study") }
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
        let report = try MetadataImporter.importTable(bytes, source: sourceName, into: store)
        for warning in report.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        print(report.summary)
        for line in report.changeDescriptions { print("  changed: \(line)") }
    }
}
