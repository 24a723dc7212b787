// Fetch throughput over loopback: 8 files of 64 MiB with 4 jobs from a local HTTP server
// (Benchmarks/peers/mirror_server.py, sendfile), hashed, fsync'ed and published into a
// content-addressed store; then the same files with the `curl` CLI (4 in parallel, no hashing,
// no fsync) and with Python urllib + hashlib (4 threads) as peers.
//
//   swift build -c release --product bench-mirrors && .build/release/bench-mirrors
//   (HRTEM_BENCH_FILES=8 HRTEM_BENCH_MIB=64 HRTEM_BENCH_JOBS=4 change the workload)
//
// Targets: at least 500 MB/s in total; peak resident memory (VmHWM) under 64 MiB.
import Foundation
import Micrograph
import Mirrors

let environment = ProcessInfo.processInfo.environment
let fileCount = Int(environment["HRTEM_BENCH_FILES"] ?? "") ?? 8
let mebibytes = Int(environment["HRTEM_BENCH_MIB"] ?? "") ?? 64
let jobs = Int(environment["HRTEM_BENCH_JOBS"] ?? "") ?? 4
let fileSize = mebibytes << 20
let totalBytes = Double(fileCount * fileSize)

func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return .nan }
    let kib = Double(line.split(separator: " ").dropFirst().first.map(String.init) ?? "") ?? .nan
    return kib / 1024
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
func cpuSeconds(children: Bool = false) -> Double {
    var usage = rusage()
    getrusage(children ? RUSAGE_CHILDREN.rawValue : RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
}

/// The machine is shared: wall-clock rates swing with the load, so each client's CPU time is
/// printed too, as MB per CPU-second (what one dedicated core would sustain).
func cpuNote(_ cpu: Double) -> String { String(format: "CPU %.2f s = %.0f MB per CPU-s", cpu, totalBytes / cpu / 1e6) }

let work = FileManager.default.temporaryDirectory.appendingPathComponent("hrtem-bench-mirrors-\(getpid())")
let tree = work.appendingPathComponent("tree")
try FileManager.default.createDirectory(at: tree.appendingPathComponent("session A"), withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }

// Files written in 4 MiB pieces so the benchmark's own peak memory stays small.
var names: [String] = []
do {
    var random = SplitMix64(seed: 2024)
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 8)
    defer { buffer.deallocate() }
    for i in 0..<fileCount {
        let name = "frame \(i).dm3"
        let handle = try FileHandle(forWritingTo: {
            let url = tree.appendingPathComponent("session A").appendingPathComponent(name)
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            return url
        }())
        var written = 0
        while written < fileSize {
            let words = buffer.bindMemory(to: UInt64.self)
            for j in 0..<words.count { words[j] = random.next() }
            let n = min(chunk, fileSize - written)
            try handle.write(contentsOf: Data(bytesNoCopy: buffer.baseAddress!, count: n, deallocator: .none))
            written += n
        }
        try handle.close()
        names.append(name)
    }
}

// The local mirror.
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("peers/mirror_server.py")
let server = Process()
server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
server.arguments = ["python3", script.path, "--root", tree.path, "--lifetime", "600"]
let pipe = Pipe()
server.standardOutput = pipe
try server.run()
var portLine = Data()
while true {
    let byte = pipe.fileHandleForReading.readData(ofLength: 1)
    if byte.isEmpty || byte == Data("\n".utf8) { break }
    portLine.append(byte)
}
guard let port = Int(String(decoding: portLine, as: UTF8.self).dropFirst(5)) else {
    fatalError("mirror server did not start: \(String(decoding: portLine, as: UTF8.self))")
}
defer { server.terminate() }
var mirror = MirrorDefinition.nersc
mirror.baseURL = "http://127.0.0.1:\(port)/"
let urls = names.map { mirror.url(for: try! RemotePath("session A/" + $0)) }

print("bench-mirrors: \(fileCount) files x \(mebibytes) MiB, \(jobs) jobs, loopback, \(ProcessInfo.processInfo.activeProcessorCount) cores")

// hrtem: stream to tmp while hashing, fsync, rename into store/<aa>/<sha256>. Once with the
// store on the work folder's disk (what users get), once on tmpfs when /dev/shm has room (the
// network + hashing path alone: fsync is free there).
@MainActor func runHrtem(storeRoot: URL, label: String) -> Double {
    let store = ContentStore(root: storeRoot)
    var configuration = DownloaderConfiguration()
    configuration.jobs = jobs
    let downloader = Downloader(store: store, configuration: configuration)
    let start = monotonicSeconds()
    let cpuStart = cpuSeconds()
    let results = downloader.download(urls.enumerated().map { DownloadRequest(key: names[$0.offset], url: $0.element) })
    let seconds = monotonicSeconds() - start
    let cpu = cpuSeconds() - cpuStart
    let failed = results.filter { if case .fetched = $0.outcome { return false } else { return true } }
    guard failed.isEmpty else { fatalError("hrtem fetch failed: \(failed.map(\.outcome))") }
    print(String(format: "%@: %6.2f s  %7.1f MB/s  %@  peak RSS so far %.1f MiB", label, seconds, totalBytes / seconds / 1e6,
                 cpuNote(cpu), peakResidentMiB()))
    try? FileManager.default.removeItem(at: storeRoot)
    return totalBytes / seconds / 1e6
}
let hrtemRate = runHrtem(storeRoot: work.appendingPathComponent("data"), label: "hrtem (disk)  ")
var shmFree: Int64 = 0
if let attributes = try? FileManager.default.attributesOfFileSystem(forPath: "/dev/shm"),
   let free = attributes[.systemFreeSize] as? NSNumber { shmFree = free.int64Value }
if shmFree > Int64(totalBytes) * 2 {
    _ = runHrtem(storeRoot: URL(fileURLWithPath: "/dev/shm/hrtem-bench-mirrors-\(getpid())"), label: "hrtem (tmpfs) ")
}
print(String(format: "hrtem: hash + fsync + atomic rename per file; peak RSS %.1f MiB  [targets: >= 500 MB/s, < 64 MiB]",
             peakResidentMiB()))

// Peer 1: the curl CLI, 4 transfers in parallel, no hashing, no fsync.
let curlOut = work.appendingPathComponent("curl")
try FileManager.default.createDirectory(at: curlOut, withIntermediateDirectories: true)
var curlArguments = ["-s", "-S", "--fail", "--parallel", "--parallel-max", String(jobs)]
for (i, url) in urls.enumerated() { curlArguments += ["-o", curlOut.appendingPathComponent("\(i)").path, url] }
let curl = Process()
curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
curl.arguments = ["curl"] + curlArguments
curl.standardError = FileHandle.nullDevice
let curlStart = monotonicSeconds()
let curlCPUStart = cpuSeconds(children: true)
if (try? curl.run()) != nil {
    curl.waitUntilExit()
    let curlSeconds = monotonicSeconds() - curlStart
    print(String(format: "curl CLI      : %6.2f s  %7.1f MB/s  %@  (--parallel %d, no hash, no fsync)%@", curlSeconds,
                 totalBytes / curlSeconds / 1e6, cpuNote(cpuSeconds(children: true) - curlCPUStart), jobs,
                 curl.terminationStatus == 0 ? "" : "  [curl exit \(curl.terminationStatus)]"))
} else {
    print("curl CLI      : not available")
}
try? FileManager.default.removeItem(at: curlOut)

// Peer 2: Python urllib + hashlib SHA-256, 4 threads, 1 MiB reads, written to disk.
let python = """
import hashlib, sys, time, urllib.request, os, resource
from concurrent.futures import ThreadPoolExecutor
out = sys.argv[1]; urls = sys.argv[2:]
def get(i_url):
    i, url = i_url
    h = hashlib.sha256()
    with urllib.request.urlopen(url) as r, open(os.path.join(out, str(i)), "wb") as f:
        while True:
            b = r.read(1 << 20)
            if not b: break
            h.update(b); f.write(b)
    return h.hexdigest()
t = time.monotonic()
with ThreadPoolExecutor(\(jobs)) as ex: list(ex.map(get, enumerate(urls)))
print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
let pythonOut = work.appendingPathComponent("python")
try FileManager.default.createDirectory(at: pythonOut, withIntermediateDirectories: true)
let peer = Process()
peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
peer.arguments = ["python3", "-c", python, pythonOut.path] + urls
let peerPipe = Pipe()
peer.standardOutput = peerPipe
let peerCPUStart = cpuSeconds(children: true)
if (try? peer.run()) != nil {
    let output = String(decoding: peerPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    peer.waitUntilExit()
    let fields = output.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    if fields.count == 2 {
        print(String(format: "python urllib : %6.2f s  %7.1f MB/s  %@  (hashlib sha256, no fsync)  peak RSS %.1f MiB",
                     fields[0], totalBytes / fields[0] / 1e6, cpuNote(cpuSeconds(children: true) - peerCPUStart), fields[1]))
    } else {
        print("python urllib : failed: \(output)")
    }
}
