import Foundation

// The states one file passes through in `TransferWorker.fetch`: its partial file (opened,
// trimmed, re-hashed for a resume), each attempt's outcome, the verification of the finished
// bytes, and publication into the store or quarantine. The classes here belong to one worker
// thread for the length of one file and never cross threads, so they are not `Sendable`.

/// The running digests of one transfer's bytes: SHA-256 always (it is the content address),
/// MD5 as well when the mirror publishes an MD5.
final class TransferDigests {
    private(set) var sha256: DigestContext
    private(set) var md5: DigestContext?
    private let wantsMD5: Bool

    init(wantsMD5: Bool) {
        self.wantsMD5 = wantsMD5
        sha256 = DigestContext(md5: false)
        md5 = wantsMD5 ? DigestContext(md5: true) : nil
    }

    /// Forgets every byte seen (the file starts over from byte 0).
    func reset() {
        sha256 = DigestContext(md5: false)
        md5 = wantsMD5 ? DigestContext(md5: true) : nil
    }

    func update(_ pointer: UnsafeRawPointer, _ count: Int) {
        sha256.update(pointer, count)
        md5?.update(pointer, count)
    }

    func finalize() -> (sha256: String, md5: String?) {
        (sha256.finalizeHex(), md5?.finalizeHex())
    }
}

/// The partial file of one transfer (`<tmp>/<hash of URL>.part`), open and locked so that two
/// hrtem processes never write it at once. It outlives a failed run on purpose: the next run
/// resumes from its bytes.
final class PartialFile {
    let url: URL
    private let fd: Int32
    private var isOpen = true

    /// Opens (creating it and its folder) and locks the partial file.
    /// - Throws: `MirrorError.io` naming the folder or file; `.busy` when another process holds it.
    init(url: URL, key: String) throws(MirrorError) {
        let folder = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw .io(folder.path, "cannot create folder: \(error.localizedDescription)")
        }
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(url.path, "cannot open partial file: \(errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Foundation.close(fd)
            throw .busy(key)
        }
        self.url = url
        self.fd = fd
    }

    deinit { close() }

    /// Bytes in the file now.
    var size: Int64 { Int64(lseek(fd, 0, SEEK_END)) }

    /// Empties the file: the next byte appended is byte 0.
    func truncate() throws(MirrorError) {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw .io(url.path, "cannot truncate partial file: \(errnoText())")
        }
    }

    /// Gets the file ready for an attempt and returns the offset it resumes from: bytes beyond
    /// `expectedSize` are dropped (they cannot be right), and the bytes kept are fed to
    /// `digests` (reset first) so that the digest covers the whole file once the rest arrives.
    /// - Throws: `MirrorError.io` naming the file and the offset it could not read.
    func resumeOffset(expectedSize: Int64?, digests: TransferDigests) throws(MirrorError) -> Int64 {
        var kept = size
        if let expectedSize, kept > expectedSize {
            try truncate()
            kept = 0
        }
        digests.reset()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var position: Int64 = 0
        while position < kept {
            let n = pread(fd, buffer, min(chunk, Int(kept - position)), off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(url.path, "cannot read partial file: \(errnoText())", offset: position)
            }
            if n == 0 { throw .io(url.path, "partial file shorter than expected (\(kept) bytes)", offset: position) }
            digests.update(buffer, n)
            position += Int64(n)
        }
        _ = lseek(fd, 0, SEEK_END)
        return kept
    }

    /// Appends a piece of a reply's body.
    /// - Throws: `MirrorError.io` naming the file and the offset the write failed at.
    func append(_ pointer: UnsafeRawPointer, _ count: Int) throws(MirrorError) {
        var written = 0
        while written < count {
            let n = write(fd, pointer + written, count - written)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(url.path, "write to partial file failed: \(errnoText())", offset: size)
            }
            written += n
        }
    }

    /// Flushes the bytes to the disk (before the rename that publishes them).
    func sync() throws(MirrorError) {
        if fsync(fd) != 0 { throw .io(url.path, "fsync failed: \(errnoText())") }
    }

    func close() {
        guard isOpen else { return }
        isOpen = false
        Foundation.close(fd)
    }

    /// Deletes the file (its lock goes with the descriptor, which stays open until `close`).
    func remove() { unlink(url.path) }
}

/// How one attempt at a transfer ended.
enum AttemptOutcome: Equatable {
    /// The partial file holds the whole file (or the server says it already did).
    case completed
    /// Worth another attempt, resuming from `resumeAt` (what the partial file holds), after
    /// the back-off and no sooner than the server's `Retry-After` when it sent one.
    case resumable(MirrorError, resumeAt: Int64, retryAfter: String?)
    /// The server's idea of the range does not fit the partial file: empty it and try again
    /// at once.
    case restart(MirrorError)
    /// Another attempt cannot help.
    case fatal(MirrorError)
}

/// One attempt's outcome and the body bytes it received over the network.
struct Attempt {
    var outcome: AttemptOutcome
    var received: Int64
}

/// The check of a finished transfer against the strongest thing known about the file: the
/// mirror's published digest, else the SHA-256 recorded at an earlier download, else the size;
/// with none, the file is accepted as it is (its SHA-256 becomes the record).
struct Verification: Equatable {
    struct Mismatch: Equatable {
        var expected: String
        var found: String
    }

    /// How the content was checked, as `DownloadResult.verifiedBy` reports it.
    var method: String
    /// What was expected and what was found, when they differ.
    var mismatch: Mismatch?

    init(expected: ExpectedContent, size: Int64, sha256: String, md5: String?) {
        mismatch = nil
        if let published = expected.published {
            let found = published.algorithm == .sha256 ? sha256 : (md5 ?? "")
            method = "\(published.algorithm.rawValue) (mirror)"
            if found != published.hex {
                mismatch = Mismatch(expected: "\(published)", found: "\(published.algorithm.rawValue):\(found)")
            }
        } else if let recorded = expected.sha256 {
            method = "sha-256 (recorded)"
            if recorded != sha256 { mismatch = Mismatch(expected: "sha-256:\(recorded)", found: "sha-256:\(sha256)") }
        } else if expected.size != nil {
            method = "size"
        } else {
            method = "none: first download"
        }
        if mismatch == nil, let expectedSize = expected.size, expectedSize != size {
            mismatch = Mismatch(expected: "\(expectedSize) bytes", found: "\(size) bytes")
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
