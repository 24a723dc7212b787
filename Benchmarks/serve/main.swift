// bench-serve: `hrtem serve` on a 100,000-frame catalog, beside Python's http.server serving
// the same page pre-rendered (the floor of "send these bytes over loopback HTTP").
//
//   first byte of the catalog page (warm, median), target < 100 ms
//   a grid of 100 frames: its page and its 100 thumbnails (6 parallel connections, like a
//   browser), target < 300 ms
//   load from a second process (wrk, bounded in time): requests/s, latency, errors
//
// The client is curl (timings from its own clock: time_starttransfer, time_total) and wrk, both
// separate processes on loopback. `make bench-serve`; BENCH_SERVE_FRAMES sets the catalog size.
import Catalog
import CatalogServer
import Foundation
import Micrograph

let frameCount = Int(ProcessInfo.processInfo.environment["BENCH_SERVE_FRAMES"] ?? "") ?? 100_000
let gridFrames = 100
let repeats = 31

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}
func fmt(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

/// Runs a program to its end; its standard output.
@discardableResult
func run(_ arguments: [String], quiet: Bool = true) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    if quiet { process.standardError = FileHandle.nullDevice }
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

func available(_ tool: String) -> Bool {
    (try? run(["sh", "-c", "command -v \(tool)"]).isEmpty == false) ?? false
}

/// Milliseconds to the first byte of `url`, `count` times, each on a new connection (curl's own
/// clock: from the start of the transfer, connect included, process start excluded).
func firstByteTimes(_ url: String, count: Int) throws -> [Double] {
    try (0..<count).compactMap { _ in
        Double(try run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}", url])).map { $0 * 1000 }
    }
}

/// Wall milliseconds for curl to fetch every URL, `parallel` connections at a time.
func wallTime(_ urls: [String], parallel: Int) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    let codes = try run(["curl", "-s", "--parallel", "--parallel-max", "\(parallel)", "-w", "%{http_code}\\n"]
                        + urls.flatMap { ["-o", "/dev/null", $0] })
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    let failed = codes.split(separator: "\n").filter { $0 != "200" }
    precondition(failed.isEmpty, "grid requests failed: \(failed.prefix(5))")
    return elapsed
}

struct Load { var requestsPerSecond: Double; var latency: String; var errors: String }

/// wrk for `seconds` with 2 threads and 16 connections.
func load(_ url: String, seconds: Int) throws -> Load {
    let output = try run(["wrk", "-t2", "-c16", "-d\(seconds)s", "--timeout", "5s", url])
    func line(_ prefix: String) -> String? {
        output.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(prefix) }
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }
    let rate = line("Requests/sec:").flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    let latency = line("Latency").map { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().prefix(3).joined(separator: " ") } ?? "?"
    let errors = [line("Socket errors:"), line("Non-2xx or 3xx responses:")].compactMap { $0 }
    return Load(requestsPerSecond: rate, latency: latency, errors: errors.isEmpty ? "none" : errors.joined(separator: "; "))
}

// --keep DIR leaves the catalog and frames in DIR (to serve them by hand afterwards).
guard available("curl") else { print("bench-serve: curl is needed"); exit(1) }
let kept: URL? = CommandLine.arguments.firstIndex(of: "--keep").flatMap {
    $0 + 1 < CommandLine.arguments.count ? URL(fileURLWithPath: CommandLine.arguments[$0 + 1]) : nil
}
let work = kept ?? FileManager.default.temporaryDirectory.appendingPathComponent("hrtem-bench-serve-\(ProcessInfo.processInfo.processIdentifier)")
if let kept, FileManager.default.fileExists(atPath: kept.path) {
    print("bench-serve: --keep \(kept.path) exists; name a new folder")
    exit(1)
}
/// Ends the run: stops the peer server, removes the scratch folder (exit skips defer blocks).
func finish(_ status: Int32, peer: Process? = nil) -> Never {
    if let peer, peer.isRunning { peer.terminate(); peer.waitUntilExit() }
    if kept == nil { try? FileManager.default.removeItem(at: work) }
    exit(status)
}
let folder = DataFolder(url: work.appendingPathComponent("data"))
let store = try CatalogStore(folder: folder)

print("bench-serve: \(frameCount) frames, \(gridFrames) of them ingested (512 x 512 DM4); medians of \(repeats); machine shared, timings are noisy")
var random = SplitMix64(seed: 20_261_206)
let materials = ["Au", "Ag", "CdSe"], supports = ["UT Carbon", "SiN"]
let doses = [80.0, 282, 423, 442, 840, 884], scales = [0.02, 0.026, 0.033, 0.042], sizes = [2.2, 5, 10, 20]
var records: [FrameRecord] = []
records.reserveCapacity(frameCount)
for index in 0..<frameCount {
    func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
    records.append(FrameRecord(session: "2022_02_02 bench \(index % 17)", fileName: String(format: "frame_%07d.dm4", index),
                               metadataRow: index + 1, material: pick(materials), particleSizeNm: pick(sizes),
                               support: pick(supports), dose: pick(doses), pixelScaleNm: pick(scales),
                               magnificationKx: 330, date: "2022-02-02"))
}
let fillStart = DispatchTime.now().uptimeNanoseconds
try store.insertFrames(records)
records = []
// The grid's frames: real files, a material of their own so one query selects exactly them.
let frameFolder = work.appendingPathComponent("frames")
for index in 0..<gridFrames {
    let url = frameFolder.appendingPathComponent(String(format: "grid_%03d.dm4", index))
    let raster = Raster(width: 512, height: 512, pixels: (0..<(512 * 512)).map { _ in Float(random.nextGaussian() * 20 + 400) })
    try FileManager.default.createDirectory(at: frameFolder, withIntermediateDirectories: true)
    try writeDM(raster, to: url, pixelSizeNM: 0.02)
    var frame = FrameRecord(session: "2022_02_03 grid", fileName: url.lastPathComponent, material: "Pt",
                            particleSizeNm: 5, dose: 423, pixelScaleNm: 0.02)
    frame.path = url.path
    frame.sha256 = try sha256Hex(fileAt: url)
    frame.format = "dm4"; frame.width = 512; frame.height = 512; frame.pixelType = "float32"
    try store.upsertFrame(frame)
}
// One full-size OneView frame, for the zoomable view's tile pyramid.
let bigURL = frameFolder.appendingPathComponent("oneview_4096.dm4")
try writeDM(Raster(width: 4096, height: 4096, pixels: (0..<(4096 * 4096)).map { _ in Float(random.next() % 1000) }),
            to: bigURL, pixelSizeNM: 0.02)
var big = FrameRecord(session: "2022_02_03 grid", fileName: bigURL.lastPathComponent, material: "Pt4096")
big.path = bigURL.path
big.sha256 = try sha256Hex(fileAt: bigURL)
big.format = "dm4"; big.width = 4096; big.height = 4096; big.pixelType = "float32"
let bigId = try store.upsertFrame(big).id!
try store.dbQueue.write { db in try db.execute(sql: "ANALYZE") }
print("catalog: \(try store.count(matching: "labeled or not labeled")) frames written in \(fmt(Double(DispatchTime.now().uptimeNanoseconds - fillStart) / 1e9)) s")

// The server, in this process, on a port the system picks.
let port = Locked<Int?>(nil)
var settings = CatalogServer.Settings(host: "127.0.0.1", port: 0)
settings.backgroundThumbnails = false
let server = try CatalogServer(folder: folder, settings: settings)
Task.detached { try await server.run { chosen in port.withLock { $0 = chosen } } }
while port.value == nil { usleep(10_000) }
let base = "http://127.0.0.1:\(port.value!)"
let gridQuery = "/?q=" + "material = \"Pt\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
let gridPage = try run(["curl", "-s", base + gridQuery])
let thumbnailURLs = gridPage.matches(of: /src="(\/frames\/\d+\/thumbnail)"/).map { base + String($0.1) }
precondition(thumbnailURLs.count == gridFrames, "the grid shows \(thumbnailURLs.count) thumbnails")
let coldGrid = try wallTime([base + gridQuery] + thumbnailURLs, parallel: 6)
print("thumbnails computed on first view of the grid (100 frames of 512 x 512, cold): \(fmt(coldGrid)) ms")

// The 4096 x 4096 frame's page, then its pyramid (341 tiles of 256 px and the manifest).
let framePageFirstByte = try firstByteTimes(base + "/frames/\(bigId)", count: 1)[0]
let pyramidStart = DispatchTime.now().uptimeNanoseconds
var pyramidReady = false
while !pyramidReady, Double(DispatchTime.now().uptimeNanoseconds - pyramidStart) < 120e9 {
    pyramidReady = try run(["curl", "-s", base + "/frames/\(bigId)/pyramid"]).contains("\"ready\":true")
    if !pyramidReady { usleep(100_000) }
}
let pyramidSeconds = Double(DispatchTime.now().uptimeNanoseconds - pyramidStart) / 1e9
let fullResolutionTile = try firstByteTimes(base + "/frames/\(bigId)/tiles/0/7/7", count: repeats)

let pageCold = try firstByteTimes(base + "/", count: 1)[0]
let page = try firstByteTimes(base + "/", count: repeats)
let narrowURL = base + "/?q=" + "material = \"Au\" and dose ~ 423 +- 5 and size = 5".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
let narrow = try firstByteTimes(narrowURL, count: repeats)
let lastPage = try firstByteTimes(base + "/?page=1000", count: repeats)
let grid = try (0..<9).map { _ in try wallTime([base + gridQuery] + thumbnailURLs, parallel: 6) }

// The peer: Python's http.server with the same page, pre-rendered.
let peerFolder = work.appendingPathComponent("peer")
try FileManager.default.createDirectory(at: peerFolder, withIntermediateDirectories: true)
try Data(try run(["curl", "-s", base + "/"]).utf8).write(to: peerFolder.appendingPathComponent("index.html"))
let peerPort = port.value! + 1
let python = ProcessInfo.processInfo.environment["HRTEM_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
let peer = Process()
peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
peer.arguments = [python, "-m", "http.server", "\(peerPort)", "--bind", "127.0.0.1", "--directory", peerFolder.path]
peer.standardOutput = FileHandle.nullDevice
peer.standardError = FileHandle.nullDevice
try peer.run()
let peerBase = "http://127.0.0.1:\(peerPort)"
var peerReady = false
for _ in 0..<100 where !peerReady {
    peerReady = (try? run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", peerBase + "/"])) == "200"
    if !peerReady { usleep(50_000) }
}
let peerPage = peerReady ? try firstByteTimes(peerBase + "/", count: repeats) : []
let pageBytes = (try? Data(contentsOf: peerFolder.appendingPathComponent("index.html")).count) ?? 0

print("")
print("first byte, warm (median ms)            hrtem serve      python http.server (static copy)")
print("catalog page, all \(frameCount) frames      \(fmt(median(page)).padding(toLength: 17, withPad: " ", startingAt: 0))\(peerReady ? fmt(median(peerPage)) : "n/a")   (\(pageBytes) bytes; hrtem's first request: \(fmt(pageCold)) ms)")
print("catalog page, 3-predicate query        \(fmt(median(narrow)))")
print("catalog page 1000 (frames 99,901-100,000) \(fmt(median(lastPage)))")
print("grid of \(gridFrames): page + thumbnails (wall ms) \(fmt(median(grid)))  (targets: page < 100 ms, grid < 300 ms)")
print("4096 x 4096 frame: page \(fmt(framePageFirstByte)) ms, tile pyramid built in \(fmt(pyramidSeconds)) s (once, cached)\(pyramidReady ? "" : " NOT READY"), a 1:1 tile \(fmt(median(fullResolutionTile))) ms")

if available("wrk") {
    let ours = try load(base + "/", seconds: 5)
    let theirs = peerReady ? try load(peerBase + "/", seconds: 5) : nil
    let thumbnail = try load(thumbnailURLs[0], seconds: 3)
    print("")
    print("load: wrk -t2 -c16, 5 s, from a second process on loopback")
    print("catalog page   hrtem serve: \(Int(ours.requestsPerSecond)) req/s, latency avg/stdev/max \(ours.latency), errors: \(ours.errors)")
    if let theirs { print("               python http.server: \(Int(theirs.requestsPerSecond)) req/s, latency \(theirs.latency), errors: \(theirs.errors)") }
    print("thumbnail      hrtem serve: \(Int(thumbnail.requestsPerSecond)) req/s, latency \(thumbnail.latency), errors: \(thumbnail.errors)")
    let after = try run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/"])
    print("after the load the server answers: \(after)")
} else {
    print("wrk is not installed (scripts/ensure-test-tools.sh installs it): load figures skipped")
}
finish(0, peer: peer)
