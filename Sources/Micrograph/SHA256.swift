import CCrypto
import Foundation

/// Streaming SHA-256 through OpenSSL (which uses the CPU's SHA instructions when present).
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update<D: DataProtocol>(_ data: D) {
        for region in data.regions { region.withUnsafeBytes { update($0) } }
    }

    /// The digest as 64 lower-case hex digits. The hasher cannot be used afterwards.
    public func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return hexString(digest)
    }
}

public func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// SHA-256 of bytes in memory, as 64 lower-case hex digits.
public func sha256Hex<D: DataProtocol>(_ data: D) -> String {
    let hasher = SHA256Hasher()
    hasher.update(data)
    return hasher.finalizeHex()
}

/// SHA-256 of a whole file, streamed in 4 MiB reads: memory stays constant whatever the size.
/// - Throws: `FormatError` naming the file when it cannot be opened or read.
public func sha256Hex(fileAt url: URL) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: url.path) else {
        throw FormatError(file: url.path, "cannot open for reading")
    }
    defer { try? handle.close() }
    let hasher = SHA256Hasher()
    while true {
        let chunk: Data?
        do { chunk = try handle.read(upToCount: 4 << 20) } catch {
            throw FormatError(file: url.path, "read failed: \(error.localizedDescription)")
        }
        guard let chunk, !chunk.isEmpty else { break }
        hasher.update(chunk)
    }
    return hasher.finalizeHex()
}
