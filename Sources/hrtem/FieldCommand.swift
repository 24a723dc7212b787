import ArgumentParser
import Catalog
import Foundation

struct FieldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "field",
        abstract: "Register the fields your lab records (defocus, temperature, ...) and list the catalog's fields.",
        discussion: """
        The study's fields are built in; a registered field is queried, grouped, imported and
        set like them. Types: number, text, date (2021-08-26 or 08/26/21), bool.

        Examples:
          hrtem field add defocus --type number --unit nm --describe 'objective defocus'
          hrtem field add specimen_batch --type text
          hrtem field list
          hrtem field index material,camera,defocus
        """,
        subcommands: [Add.self, List.self, Index.self])

    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "index",
            abstract: "Add a composite index for queries that test these fields together (equality-tested fields first).")
        @OptionGroup var data: DataOptions
        @Argument(help: "Comma-separated fields, e.g. material,camera,defocus.") var fields: String

        func run() throws {
            let store = try CatalogStore(folder: data.folder)
            let names = fields.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let index = try store.dbQueue.write { db in
                do { return try FieldRegistry.load(from: db).addIndex(over: names, in: db) } catch let error as FieldError {
                    throw ValidationError(error.description)
                }
            }
            print("index \(index) ready")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Register a field.")
        @OptionGroup var data: DataOptions
        @Argument(help: "The field's name: a letter, then letters, digits or '_'.") var name: String
        @Option(help: "number, text, date or bool.") var type: String
        @Option(help: "The unit values are stored in (e.g. nm; tables in A, pm, um are converted).") var unit: String?
        @Option(help: "What the field means.") var describe: String?

        func validate() throws {
            guard QueryField.Kind(typeName: type) != nil else {
                throw ValidationError("--type must be number, text, date or bool (got '\(type)')")
            }
            guard FieldRegistry.isValidName(name.lowercased()) else {
                throw ValidationError("'\(name)' is not a field name: use a letter, then letters, digits or '_' (not a query keyword)")
            }
        }

        func run() throws {
            let store = try CatalogStore(folder: data.folder)
            let field = try store.dbQueue.write { db in
                try FieldRegistry.add(name: name, kind: QueryField.Kind(typeName: type)!, unit: unit, description: describe, in: db)
            }
            print("field \(field.rawValue) added (\(field.kind.typeName)\(field.unit.map { ", \($0)" } ?? ""))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List every field, built-in and registered.")
        @OptionGroup var data: DataOptions
        func run() throws {
            print(try CatalogStore(folder: data.folder).fieldRegistry().table, terminator: "")
        }
    }
}

struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set fields of every frame a query selects (one transaction).",
        discussion: """
        Values are checked against each field's type; an unknown field or a wrong value changes
        nothing. A value set here outranks tables, file names and tags (a re-import keeps it);
        `field=` with no value removes it. `hrtem show FRAME` prints each value's source and
        `hrtem history FRAME` its changes.

        Examples:
          hrtem set --where 'session = "2024_03_01 lab"' defocus=-50 operator=ada
          hrtem set --where 'file = "a_01.dm3"' dose=
        """)

    @OptionGroup var data: DataOptions
    @Option(name: .customLong("where"), help: "The frames to change.") var filter: String
    @Argument(help: "field=value pairs.") var assignments: [String]

    func validate() throws {
        guard !assignments.isEmpty else { throw ValidationError("give at least one field=value") }
    }

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let registry = try store.fieldRegistry()
        let parsed: [(QueryField, QueryValue?)]
        do { parsed = try assignments.map { try FieldAssignment.parse($0, registry: registry) } } catch {
            throw ValidationError("\(error)")
        }
        let query = try FrameQuery.parse(filter, fields: registry)
        let (frames, changed) = try FieldAssignment.apply(parsed, where: query, in: store)
        print("\(frames) frame\(frames == 1 ? "" : "s") selected, \(changed) value\(changed == 1 ? "" : "s") changed")
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "The changes of one frame's values over time, with their sources.",
        discussion: """
        Examples:
          hrtem history 17
          hrtem history 'lab session/a_01.dm3'
        """)

    @OptionGroup var data: DataOptions
    @Argument(help: "The frame (id, 'session/file name', file name or path).") var frame: String

    func run() throws {
        let store = try CatalogStore(folder: data.folder)
        let record = try FrameDetails.resolve(frame, in: store)
        let history = try store.dbQueue.read { db in try FrameValues.history(frameId: record.id!, in: db) }
        print(FrameDetails.renderHistory(history), terminator: "")
    }
}
