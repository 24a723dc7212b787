// bench-catalog: the catalog's query and import speed, beside Python peers on the same data.
//
//   swift build -c release --product bench-catalog && .build/release/bench-catalog [--frames N] [--repeats R]
//   (or `make bench-catalog`)
//
// Fills a fresh catalog file with N frames (default 1,000,000) drawn uniformly and seeded from
// the study's value sets, times three-predicate queries that select about 1% of the rows
// (median of R runs of CatalogStore.frames(matching:), parse + SQL + decoding every record),
// then times importing the study's 407-row metadata table (median of R imports into fresh
// catalog files). Peers: Python's sqlite3 running hrtem's compiled SQL on the same file, NumPy
// boolean masks over the same columns in memory, and the floor: SQLite's C API stepping that SQL
// (Benchmarks/peers/catalog_floor.c, built with the C compiler at hand); csv + sqlite3
// executemany for the import.
//
// Three registered fields (defocus, detector, temperature: `hrtem field add`) are filled for
// every frame, with a composite index per query shape (`hrtem field index`), and three more
// queries mix them with the study's fields, again selecting about 1%.
import Catalog
import Foundation
import GRDB
import Micrograph

func argument(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
          let parsed = Int(arguments[index + 1]) else { return value }
    return parsed
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

func fmt(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

let frameCount = argument("--frames", default: 1_000_000)
/// `--keep PATH`: fill PATH once and reuse it on later runs (for iterating on indexes).
let keptCatalog: URL? = CommandLine.arguments.firstIndex(of: "--keep").flatMap {
    $0 + 1 < CommandLine.arguments.count ? URL(fileURLWithPath: CommandLine.arguments[$0 + 1]) : nil
}
let repeats = argument("--repeats", default: 31)
let benchFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let peerScript = benchFolder.deletingLastPathComponent().appendingPathComponent("peers/catalog_peer.py")
let python = ProcessInfo.processInfo.environment["HRTEM_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
let referenceTable = benchFolder.deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/reference/Dataset_metadata.csv")

let work = FileManager.default.temporaryDirectory.appendingPathComponent("bench-catalog-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }

/// Three-predicate queries that each select about 1% of uniformly drawn frames; the last three
/// mix registered fields with the study's.
let benchQueries = [
    #"material = "Ag" and size = 5 and pixel_scale = 0.02"#,
    #"material = "Au" and dose ~ 285 +- 10 and size = 10"#,
    #"support = "SiN" and magnification = 330 and dose < 100"#,
    #"material = "Ag" and detector = "K3" and defocus ~ -50 +- 6"#,
    #"size = 5 and temperature = 300 and defocus < -88"#,
    #"detector = "OneView" and temperature = 100 and pixel_scale = 0.02"#,
]
/// Registered fields: name, type, unit; and the composite index each mixed query shape gets.
let benchFields: [(String, QueryField.Kind, String?)] = [("defocus", .number, "nm"), ("detector", .text, nil),
                                                         ("temperature", .number, "K")]
let benchIndexes = [["material", "detector", "defocus"], ["size", "temperature", "defocus"],
                    ["detector", "temperature", "pixel_scale"]]
let detectors = ["OneView", "K3", "Ceta", "US1000"]
let temperatures = [100.0, 200, 300]

// The study's value sets (its metadata table).
let materials = ["Au", "Ag", "CdSe"]
let sizes = [2.2, 5, 10, 20]
let shapes = ["Sphere", "Oblong"]
let supports = [("UT Carbon", "UTC"), ("SiN", "SiN")]
let doses = [80.0, 282, 287, 418, 420, 421, 423, 425, 426, 440, 442, 447, 450, 453, 840, 884]
let pixelScales = [0.02, 0.026, 0.033, 0.042, 0.04]
let magnifications = [330.0, 260, 205, 160]
let dates = ["2021-08-26", "2021-09-02", "2021-10-06", "2021-12-15", "2022-02-02", "2022-06-15", "2022-10-25",
             "2022-11-09", "2023-01-23"]

print("bench-catalog: \(frameCount) frames, median of \(repeats) runs (machine shared: timings are noisy)")
let catalogFile = keptCatalog ?? work.appendingPathComponent("catalog.sqlite")
let reuse = FileManager.default.fileExists(atPath: catalogFile.path)
var random = SplitMix64(seed: 20_240_611)
@MainActor func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
var frames: [FrameRecord] = []
frames.reserveCapacity(frameCount)
for index in 0..<(reuse ? 0 : frameCount) {
    let material = pick(materials), support = pick(supports), dose = pick(doses), date = pick(dates)
    let magnification = pick(magnifications), exposure = 0.1596
    let session = "\(date.replacingOccurrences(of: "-", with: "_")) bench \(index % 11)"
    let name = StudyFileName(date: date, material: material, support: support.1, magnificationKx: magnification,
                             doseRate: (dose / exposure).rounded(), exposureSeconds: exposure, sequence: index,
                             sequenceWidth: 7)
    frames.append(FrameRecord(session: session, fileName: name.fileName, metadataRow: index + 1, material: material,
                              particleSizeNm: pick(sizes), shape: pick(shapes), support: support.0,
                              instrument: "Team05", dose: dose, doseRate: name.doseRate, exposureSeconds: exposure,
                              pixelScaleNm: pick(pixelScales), magnificationKx: magnification, date: date))
}
let store = try CatalogStore(file: catalogFile)
if reuse {
    print("reusing \(catalogFile.path)")
} else {
    let fillMs = try milliseconds { try store.insertFrames(frames) }
    print("fill: \(frameCount) frames in \(fmt(fillMs / 1000, 1)) s (\(Int(Double(frameCount) / fillMs * 1000)) frames/s, one transaction)")
}
frames = []
if try store.fieldRegistry().field(named: "defocus") == nil {
    // Locals, not the top level's (main-actor) globals, go into the database closure.
    let fields = benchFields, indexes = benchIndexes, detectorValues = detectors, temperatureValues = temperatures
    let fillMs = try milliseconds {
        try store.dbQueue.write { db in
            var columns: [String] = []
            for (name, kind, unit) in fields {
                let field = try FieldRegistry.add(name: name, kind: kind, unit: unit, description: "bench", in: db)
                columns.append(String(field.column.dropFirst("frames.".count)))
            }
            let update = try db.makeStatement(sql: "UPDATE frames SET \(columns.map { "\($0) = ?" }.joined(separator: ", ")) WHERE id = ?")
            var values = SplitMix64(seed: 20_251_206)
            for id in try Int64.fetchAll(db, sql: "SELECT id FROM frames ORDER BY id") {
                let defocus = -Double(1 + values.next() % 100)
                let detector = detectorValues[Int(values.next() % UInt64(detectorValues.count))]
                let temperature = temperatureValues[Int(values.next() % UInt64(temperatureValues.count))]
                try update.execute(arguments: [defocus, detector, temperature, id])
            }
            let registry = try FieldRegistry.load(from: db)
            for names in indexes { try registry.addIndex(over: names, in: db) }
        }
    }
    print("registered fields \(benchFields.map(\.0).joined(separator: ", ")): filled and indexed in \(fmt(fillMs / 1000, 1)) s")
}
try store.dbQueue.write { db in try db.execute(sql: "ANALYZE") }
// The SQL hrtem runs: numeric ranges become the catalog's exact values (FrameQuery.compile(in:)).
func compiledForCatalog(_ query: String) throws -> FrameQuery.Compiled {
    let parsed = try store.parseQuery(query)
    return try store.dbQueue.read { db in try parsed.compile(in: db) }
}
for query in benchQueries {
    let compiled = try compiledForCatalog(query)
    let plan = try store.dbQueue.read { db in
        try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT * FROM frames WHERE \(compiled.sql)", arguments: compiled.arguments)
            .map { $0["detail"] as String? ?? "" }
    }
    print("plan of \(query): \(plan.joined(separator: "; "))")
}

let queries = benchQueries
var spec: [[String: Any]] = []
var hrtemRows: [Int] = [], hrtemMs: [Double] = [], countMs: [Double] = [], idsMs: [Double] = []
/// Opening the catalog and running the query once, as `hrtem query` does: a new connection
/// starts with SQLite's page cache empty and the file mapped afresh (the file itself stays in
/// the OS page cache; process start-up is not included).
var firstQueryMs: [Double] = []
for query in queries {
    var rows = try store.frames(matching: query).count
    hrtemMs.append(median(try (0..<repeats).map { _ in try milliseconds { rows = try store.frames(matching: query).count } }))
    countMs.append(median(try (0..<repeats).map { _ in try milliseconds { _ = try store.count(matching: query) } }))
    idsMs.append(median(try (0..<repeats).map { _ in try milliseconds { _ = try store.frameIds(matching: query) } }))
    firstQueryMs.append(median(try (0..<min(repeats, 9)).map { _ in
        try milliseconds { _ = try CatalogStore(file: catalogFile).frames(matching: query) }
    }))
    hrtemRows.append(rows)
    // The peer runs the very SQL hrtem ran, on the same file.
    let compiled = try compiledForCatalog(query)
    let arguments: [Any] = compiled.values.map { value -> Any in
        switch value.storage {
        case .double(let number): return number
        case .int64(let number): return number
        case .string(let text): return text
        default: return NSNull()
        }
    }
    // The same predicates for NumPy: every leaf is text equality or an open interval.
    var numpy: [[String: Any]] = []
    func leaves(_ expression: QueryExpression) {
        switch expression {
        case .and(let left, let right): leaves(left); leaves(right)
        case .compare(let field, .equal, .text(let text)):
            numpy.append(["column": String(field.column.dropFirst("frames.".count)), "text": text])
        case .compare(let field, .equal, .number(let value)):
            numpy.append(["column": String(field.column.dropFirst("frames.".count)),
                          "low": value - FrameQuery.defaultMargin, "high": value + FrameQuery.defaultMargin])
        case .compare(let field, .less, .number(let value)):
            numpy.append(["column": String(field.column.dropFirst("frames.".count)), "low": -1e300, "high": value])
        case .near(let field, let value, let margin):
            numpy.append(["column": String(field.column.dropFirst("frames.".count)),
                          "low": value - margin, "high": value + margin])
        default: fatalError("bench query uses an unsupported form")
        }
    }
    leaves(try store.parseQuery(query).expression)
    spec.append(["sql": compiled.sql, "arguments": arguments, "numpy": numpy])
}

let specFile = work.appendingPathComponent("spec.json")
try JSONSerialization.data(withJSONObject: [
    "queries": spec, "columns": CatalogStore.frameColumns, "order": CatalogStore.frameOrder,
]).write(to: specFile)

func runPeer(_ arguments: [String]) -> [String: Any]? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [python, peerScript.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
}

/// Builds and runs Benchmarks/peers/catalog_floor.c (SQLite's C API stepping the same SQL:
/// what any binding pays before it makes a single value of its own). nil when no C compiler
/// or sqlite3.h is at hand.
func runFloor(_ queries: [FrameQuery.Compiled]) -> [String: Any]? {
    let source = peerScript.deletingLastPathComponent().appendingPathComponent("catalog_floor.c")
    let binary = work.appendingPathComponent("catalog_floor")
    func run(_ arguments: [String]) -> Data? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? data : nil
    }
    let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
    guard [compiler, "clang"].contains(where: { run([$0, "-O2", "-o", binary.path, source.path, "-lsqlite3"]) != nil })
    else { return nil }
    var arguments = [binary.path, catalogFile.path, "\(repeats)", CatalogStore.frameColumns]
    for compiled in queries {
        arguments += [compiled.sql, "\(compiled.values.count)"]
        arguments += compiled.values.map { value -> String in
            switch value.storage {
            case .double(let number): return "r:\(number)"
            case .int64(let number): return "i:\(number)"
            case .string(let text): return "t:\(text)"
            default: fatalError("bench query binds an unsupported value")
            }
        }
    }
    return run(arguments).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
}

let floor = runFloor(try queries.map(compiledForCatalog))
let floorRecords = floor?["records"] as? [Double]
let floorFirst = floor?["records_first"] as? [Double]
let peer = runPeer(["query", catalogFile.path, specFile.path, "\(repeats)"])
let peerSQLite = peer?["sqlite3"] as? [Double]
let peerNumpy = peer?["numpy"] as? [Double]
let peerRows = peer?["rows"] as? [Int]
print("")
print("query                                                      rows   %rows  records ms  ids ms  count ms  open+records ms  C floor ms (first)  sqlite3(py) ms  numpy ms")
for (index, query) in queries.enumerated() {
    let rows = hrtemRows[index]
    var line = query.padding(toLength: 58, withPad: " ", startingAt: 0)
    line += String(rows).leftPadded(7) + fmt(100 * Double(rows) / Double(frameCount)).leftPadded(8)
    line += fmt(hrtemMs[index]).leftPadded(12) + fmt(idsMs[index]).leftPadded(8) + fmt(countMs[index]).leftPadded(10)
    line += fmt(firstQueryMs[index]).leftPadded(17)
    line += (floorRecords.map { fmt($0[index]) } ?? "n/a").leftPadded(12)
    line += (floorFirst.map { "(" + fmt($0[index]) + ")" } ?? "").leftPadded(8)
    line += (peerSQLite.map { fmt($0[index]) } ?? "n/a").leftPadded(16)
    line += (peerNumpy.map { fmt($0[index]) } ?? "n/a").leftPadded(10)
    if let peerRows, peerRows[index] != rows { line += "  (peer rows \(peerRows[index]) differ!)" }
    print(line)
}
print("records: CatalogStore.frames(matching:) (parse, SQL, every column of every row, decoded, in catalog order);")
print("ids: frameIds(matching:); count: count(matching:); open+records: a new CatalogStore and one records query")
print("(what `hrtem query` does after start-up: SQLite's cache empty, file in the OS cache, median of \(min(repeats, 9)));")
print("C floor: SQLite's C API stepping the same SQL and reading every column, no ORDER BY, no values made")
print("(Benchmarks/peers/catalog_floor.c), warm and (first run on its new connection, to compare with open+records);")
print("sqlite3(py): the same SQL and columns from Python, ORDER BY in SQL; numpy: boolean masks over columns in memory.")
if let consecutive = floor?["consecutive_ms"] as? Double, let consecutiveRows = floor?["consecutive_rows"] as? Int {
    print("C floor for \(consecutiveRows) consecutive rows (the best a table layout can give), every column: "
          + "\(fmt(consecutive)) ms")
}
print("Warm (records, ids, count, floor, peers): the file is in the OS page cache and each figure is the median of")
print("\(repeats) runs on one open connection.")
print("Target: < 10 ms median per query (records); with registered fields, ids < 10 ms and count < 5 ms.")

if let data = try? Data(contentsOf: referenceTable) {
    var importMs: [Double] = [], reimportMs: [Double] = []
    for run in 0..<repeats {
        let importStore = try CatalogStore(file: work.appendingPathComponent("import-\(run).sqlite"))
        importMs.append(try milliseconds {
            _ = try MetadataImporter.importTable(data, source: "Dataset_metadata.csv", into: importStore)
        })
        reimportMs.append(try milliseconds {
            _ = try MetadataImporter.importTable(data, source: "Dataset_metadata.csv", into: importStore)
        })
    }
    let peerImport = runPeer(["import", referenceTable.path, "\(repeats)"])?["import_ms"] as? Double
    let studyStore = try CatalogStore(file: work.appendingPathComponent("import-0.sqlite"))
    let agQuery = #"material = "Ag" and size = 5 and dose ~ 423 +- 20 and pixel_scale = 0.02"#
    var agRows = 0
    let agMs = median(try (0..<repeats).map { _ in try milliseconds { agRows = try studyStore.frames(matching: agQuery).count } })
    print("")
    print("import Dataset_metadata.csv (407 rows, validate + one transaction, file catalog in WAL)")
    print("  hrtem first import \(fmt(median(importMs))) ms, re-import (0 changed) \(fmt(median(reimportMs))) ms; "
          + "python csv+sqlite3 executemany \(peerImport.map { fmt($0) } ?? "n/a") ms; target < 100 ms")
    print("  on that 407-frame catalog, \(agQuery) -> \(agRows) frames in \(fmt(agMs, 3)) ms")
} else {
    print("\nimport: \(referenceTable.path) is absent; import timing skipped")
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
