import ArgumentParser
import Catalog
import Foundation

extension FrameOutputFormat: ExpressibleByArgument {}

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "List the catalog's frames that a query selects.",
        discussion: """
        Fields: \(QueryField.names.joined(separator: ", ")), and every field the catalog
        registered (`hrtem field list`).
        Operators: = != < <= > >=, in (...), between A and B, ~ V +- M (|x - V| < M),
        is missing, is not missing, and, or, not, parentheses. A bare = on a number means |x - V| < 1e-5 (the study's rule).
        Text in double or single quotes (backslash escapes \\" \\' \\\\); dates as 2021-08-26 or
        08/26/21; `labeled` is true when the frame has a label. Units: size nm, dose e/A^2,
        dose_rate e/A^2/s, exposure s, pixel_scale nm/px, magnification kx.

        Examples:
          hrtem query 'material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02'
          hrtem query 'material = "Au" and size in (2.2, 5, 10)' --count
          hrtem query 'session = "2022_02_02 5nm Ag nanoparticles on UTC" and not labeled' --format csv
          hrtem query 'date between 2021-10-01 and 12/31/21' --format json
          hrtem query 'defocus ~ -50 +- 5 and voltage = 300'
          hrtem query 'dose is missing' --count
        """)

    @OptionGroup var data: DataOptions

    @Argument(help: "The query, e.g. 'material = \"Au\" and dose ~ 423 +- 20'.")
    var expression: String

    @Option(help: "Output format: table, csv or json.")
    var format: FrameOutputFormat = .table

    @Flag(help: "Print only the number of frames selected.")
    var count = false

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let query = try store.parseQuery(expression)
        if count {
            print(try store.count(matching: query))
            return
        }
        print(try FrameListing.render(try store.frames(matching: query), as: format), terminator: "")
    }
}

struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Count the catalog's frames per group (session, material, ...).",
        discussion: """
        Groups by any query field: \(QueryField.names.joined(separator: ", ")), or a field
        the catalog registered. Each row gives the frames, how many have a label and how many
        are ingested; the last line is the total. --missing lists, for every field, how many of
        the frames have a value and how many lack one.

        Examples:
          hrtem summary
          hrtem summary --by material,size
          hrtem summary --by pixel_scale,magnification --where 'material = "Au"'
          hrtem summary --by defocus
          hrtem summary --missing
        """)

    @OptionGroup var data: DataOptions

    @Option(help: "Comma-separated fields to group by (default: session).")
    var by: String = "session"

    @Option(name: .customLong("where"), help: "Only frames this query selects.")
    var filter: String?

    @Flag(help: "For every field, how many frames have a value and how many lack one.")
    var missing = false

    private func fields(_ registry: FieldRegistry) throws -> [QueryField] {
        try by.split(separator: ",").map { name in
            let trimmed = name.trimmingCharacters(in: .whitespaces).lowercased()
            guard let field = registry.field(named: trimmed) else {
                throw ValidationError("unknown field '\(trimmed)' in --by; valid fields: "
                                      + registry.names.joined(separator: ", "))
            }
            return field
        }
    }

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let registry = try store.fieldRegistry()
        let query = try filter.map { try FrameQuery.parse($0, fields: registry) }
        if missing {
            print(try FieldGaps.compute(in: store, fields: registry, where: query).table, terminator: "")
            return
        }
        print(try CatalogSummary.compute(in: store, by: try fields(registry), where: query).table, terminator: "")
    }
}
