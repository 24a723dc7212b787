import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file mapped read-only into memory. Parsing headers through the mapping touches only the
/// pages it reads, so a 64 MiB frame's header costs a few page faults, not a 64 MiB read.
/// The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    // Sendable by hand: every field is fixed at init, the mapping is read-only, and it is
    // unmapped only in deinit, when no reader is left.
    public let url: URL
    /// The file as errors name it: the path, or the name given with in-memory bytes.
    public let name: String
    public let count: Int
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?
    /// -1 for bytes held in memory (`init(bytes:name:)`).
    let descriptor: Int32
    private let ownsMemory: Bool

    /// - Throws: `FormatError` naming the file when it cannot be opened or mapped.
    public init(url: URL) throws {
        self.url = url
        name = url.path
        ownsMemory = false
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatError(file: url.path, "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw FormatError(file: url.path, "cannot stat: \(message)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FormatError(file: url.path, "not a regular file")
        }
        count = Int(info.st_size)
        descriptor = fd
        if count == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw FormatError(file: url.path, "cannot map: \(message)")
        }
        base = mapped
        bytes = UnsafeRawBufferPointer(start: mapped, count: count)
    }

    /// Bytes already in memory (a download, a fuzz case), named `name` in errors.
    public init(bytes data: Data, name: String) {
        url = URL(fileURLWithPath: name)
        self.name = name
        count = data.count
        descriptor = -1
        ownsMemory = true
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        data.withUnsafeBytes { if let source = $0.baseAddress { memory.copyMemory(from: source, byteCount: data.count) } }
        base = memory
        bytes = UnsafeRawBufferPointer(start: memory, count: count)
    }

    deinit {
        if ownsMemory {
            base?.deallocate()
        } else {
            if let base { munmap(base, count) }
            close(descriptor)
        }
    }

    /// Copies `count` bytes at `offset` straight into `destination` with pread (one kernel copy
    /// from the page cache; no page faults on the mapping).
    /// - Throws: `FormatError` when the file is shorter than expected or a read fails.
    public func read(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        guard offset >= 0, count >= 0, offset <= self.count - count else {
            throw FormatError(file: name, offset: offset, "\(count) bytes at byte \(offset) run past the end of the file (\(self.count) bytes)")
        }
        if descriptor < 0 {
            if count > 0 { destination.copyMemory(from: bytes.baseAddress! + offset, byteCount: count) }
            return
        }
        // Large reads go in parallel chunks: one thread's copy from the page cache (and the
        // kernel's zeroing of the fresh pages it lands in) is well below memory bandwidth.
        let chunk = 16 << 20
        // Only where cores are plentiful: on a small shared machine the threads just compete.
        let threads = min(4, ProcessInfo.processInfo.activeProcessorCount / 2, count / chunk)
        if threads > 1 {
            let share = ((count + threads - 1) / threads + (2 << 20) - 1) & ~((2 << 20) - 1)
            let failure = Locked<FormatError?>(nil)
            concurrentPerform(iterations: threads) { part in
                let start = part * share
                guard start < count else { return }
                do {
                    try readSerially(offset: offset + start, count: min(share, count - start), into: destination + start)
                } catch let error as FormatError {
                    failure.withLock { $0 = $0 ?? error }
                } catch {}
            }
            if let failure = failure.value { throw failure }
            return
        }
        try readSerially(offset: offset, count: count, into: destination)
    }

    private func readSerially(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(descriptor, destination + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError(file: name, offset: offset + done, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw FormatError(file: name, offset: offset + done, "unexpected end of file")
            }
            done += n
        }
    }
}
