import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file mapped read-only into memory. Parsing headers through the mapping touches only the
/// pages it reads, so a 64 MiB frame's header costs a few page faults, not a 64 MiB read.
/// The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let url: URL
    public let count: Int
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?
    let descriptor: Int32

    /// - Throws: `FormatError` naming the file when it cannot be opened or mapped.
    public init(url: URL) throws {
        self.url = url
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

    deinit {
        if let base { munmap(base, count) }
        close(descriptor)
    }

    /// Copies `count` bytes at `offset` straight into `destination` with pread (one kernel copy
    /// from the page cache; no page faults on the mapping).
    /// - Throws: `FormatError` when the file is shorter than expected or a read fails.
    public func read(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(descriptor, destination + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError(file: url.path, offset: offset + done, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw FormatError(file: url.path, offset: offset + done, "unexpected end of file")
            }
            done += n
        }
    }
}
