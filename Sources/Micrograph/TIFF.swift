import CTIFF
import Foundation

/// A TIFF held in memory (a mapped file), read through libtiff with errors collected per
/// file: every failure becomes a `FormatError`, nothing is printed to stderr.
struct TIFFFile {
    let bytes: UnsafeRawBufferPointer
    let file: String

    static let maximumListedPages = 1000

    func withTIFF<T>(_ body: (OpaquePointer, UnsafeMutablePointer<hrtem_tiff_source>) throws -> T) throws -> T {
        let source = UnsafeMutablePointer<hrtem_tiff_source>.allocate(capacity: 1)
        source.initialize(to: hrtem_tiff_source())
        defer { source.deallocate() }
        source.pointee.data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        source.pointee.size = UInt64(bytes.count)
        guard let tif = hrtem_tiff_open_memory(source, file) else {
            throw failure(source, "cannot open as TIFF")
        }
        defer { TIFFClose(tif) }
        return try body(tif, source)
    }

    /// An error at `offset`, or where libtiff last read when nil.
    func failure(_ source: UnsafeMutablePointer<hrtem_tiff_source>, offset: Int? = nil, _ what: String) -> FormatError {
        let detail = source.pointee.has_error != 0
            ? withUnsafeBytes(of: &source.pointee.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            : ""
        return FormatError(file: file, offset: offset ?? Int(min(source.pointee.position, UInt64(Int.max))), "TIFF: \(what)\(detail.isEmpty ? "" : ": \(detail)")")
    }

    struct Page {
        var width: Int, height: Int, samples: Int, pixelType: PixelType?, bitsPerSample: Int, sampleFormat: Int
        var compression: Int, tiled: Bool, planar: Int
    }

    func page(_ tif: OpaquePointer, _ source: UnsafeMutablePointer<hrtem_tiff_source>) throws -> Page {
        var width: UInt32 = 0, height: UInt32 = 0
        var bits: UInt16 = 1, format: UInt16 = 1, samples: UInt16 = 1, compression: UInt16 = 1, planar: UInt16 = 1
        guard hrtem_tiff_get_uint32(tif, UInt32(TIFFTAG_IMAGEWIDTH), &width) == 1,
              hrtem_tiff_get_uint32(tif, UInt32(TIFFTAG_IMAGELENGTH), &height) == 1 else {
            throw failure(source, offset: Int(TIFFCurrentDirOffset(tif)), "the image directory has no width or height")
        }
        _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_BITSPERSAMPLE), &bits)
        _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_SAMPLEFORMAT), &format)
        _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_SAMPLESPERPIXEL), &samples)
        _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_COMPRESSION), &compression)
        _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_PLANARCONFIG), &planar)
        let type: PixelType?
        switch (Int32(format), bits) {
        case (SAMPLEFORMAT_UINT, 8): type = .uint8
        case (SAMPLEFORMAT_UINT, 16): type = .uint16
        case (SAMPLEFORMAT_UINT, 32): type = .uint32
        case (SAMPLEFORMAT_UINT, 64): type = .uint64
        case (SAMPLEFORMAT_INT, 8): type = .int8
        case (SAMPLEFORMAT_INT, 16): type = .int16
        case (SAMPLEFORMAT_INT, 32): type = .int32
        case (SAMPLEFORMAT_INT, 64): type = .int64
        case (SAMPLEFORMAT_IEEEFP, 32): type = .float32
        case (SAMPLEFORMAT_IEEEFP, 64): type = .float64
        default: type = nil
        }
        return Page(width: Int(width), height: Int(height), samples: Int(samples), pixelType: type, bitsPerSample: Int(bits),
                    sampleFormat: Int(format), compression: Int(compression), tiled: TIFFIsTiled(tif) != 0, planar: Int(planar))
    }

    func header() throws -> MicrographHeader {
        try withTIFF { tif, source in
            let first = try page(tif, source)
            let directoryOffset = Int(TIFFCurrentDirOffset(tif))
            guard let pixelType = first.pixelType else {
                throw FormatError(file: file, offset: directoryOffset,
                                  "TIFF: unsupported samples (\(first.bitsPerSample) bits, sample format \(first.sampleFormat)); hrtem reads 8/16/32/64-bit integer and 32/64-bit float")
            }
            guard first.samples >= 1, first.samples <= 4 else {
                throw FormatError(file: file, offset: directoryOffset, "TIFF: \(first.samples) samples per pixel (1 to 4 supported)")
            }
            if first.samples > 1 && first.planar != Int(PLANARCONFIG_CONTIG) {
                throw FormatError(file: file, offset: directoryOffset, "TIFF: separate colour planes are not supported")
            }
            var calibrations = [AxisCalibration(), AxisCalibration()]
            var xResolution: Float = 0, yResolution: Float = 0, unit: UInt16 = UInt16(RESUNIT_INCH)
            var descriptionPointer: UnsafePointer<CChar>?
            let description = hrtem_tiff_get_string(tif, UInt32(TIFFTAG_IMAGEDESCRIPTION), &descriptionPointer) == 1
                ? descriptionPointer.map { String(cString: $0) } ?? "" : ""
            if hrtem_tiff_get_float(tif, UInt32(TIFFTAG_XRESOLUTION), &xResolution) == 1, xResolution > 0, xResolution.isFinite {
                _ = hrtem_tiff_get_uint16_defaulted(tif, UInt32(TIFFTAG_RESOLUTIONUNIT), &unit)
                if hrtem_tiff_get_float(tif, UInt32(TIFFTAG_YRESOLUTION), &yResolution) != 1 || !(yResolution > 0) || !yResolution.isFinite {
                    yResolution = xResolution
                }
                // Pixels per centimetre or inch -> nm per pixel; with no unit, ImageJ's
                // "unit=" line in the description names the unit of 1 / resolution.
                let perUnitNM: Double?
                switch Int32(unit) {
                case RESUNIT_CENTIMETER: perUnitNM = 1e7
                case RESUNIT_INCH: perUnitNM = 2.54e7
                default:
                    let imageJUnit = description.split(separator: "\n").first { $0.hasPrefix("unit=") }.map { String($0.dropFirst(5)) }
                    switch imageJUnit {
                    case "nm"?: perUnitNM = 1
                    case "micron"?, "um"?, "\\u00B5m"?, "µm"?: perUnitNM = 1000
                    case "A"?, "Å"?: perUnitNM = 0.1
                    default: perUnitNM = nil
                    }
                }
                // ResolutionUnit inch with the TIFF default 72 dpi is no calibration at all.
                if let perUnitNM, !(Int32(unit) == RESUNIT_INCH && xResolution == 72) {
                    calibrations = [AxisCalibration(scale: perUnitNM / Double(yResolution), origin: 0, unit: "nm"),
                                    AxisCalibration(scale: perUnitNM / Double(xResolution), origin: 0, unit: "nm")]
                }
            }
            var shape = [first.height, first.width]
            if first.samples > 1 { shape.append(first.samples); calibrations.append(AxisCalibration()) }
            var dataOffset: Int?
            if first.compression == Int(COMPRESSION_NONE) && !first.tiled && TIFFNumberOfStrips(tif) == 1 {
                dataOffset = Int(TIFFGetStrileOffset(tif, 0))
            }
            var others = [OtherImage]()
            var index = 1
            while TIFFReadDirectory(tif) == 1 && others.count < TIFFFile.maximumListedPages {
                index += 1
                let next = try page(tif, source)
                others.append(OtherImage(index: index, shape: [next.height, next.width] + (next.samples > 1 ? [next.samples] : []),
                                         pixelType: next.pixelType?.rawValue ?? "\(next.bitsPerSample)-bit format \(next.sampleFormat)",
                                         note: "page \(index)"))
            }
            var facts = MicroscopeFacts()
            facts.pixelSizeNM = calibrations[1].nanometresPerPixel
            facts.pixelUnit = calibrations[1].unit
            var tags = DMTagGroup()
            if !description.isEmpty { tags.tags.append(DMTag(name: "ImageDescription", value: .text(description), offset: 0)) }
            if first.samples > 1 {
                calibrations = Array(calibrations.prefix(3))
            }
            return MicrographHeader(file: file, format: .tiff, shape: shape, pixelType: pixelType, calibrations: calibrations,
                                    byteOrder: TIFFIsBigEndian(tif) != 0 ? .bigEndian : .littleEndian, dataOffset: dataOffset,
                                    tags: tags, microscope: facts, otherImages: others, imageIndex: 1)
        }
    }

    /// The first page's pixels, little-endian, row-major (interleaved samples).
    func readFirstPage(header: MicrographHeader) throws -> [UInt8] {
        try withTIFF { tif, source in
            let page = try page(tif, source)
            let pixelBytes = header.pixelType.byteCount * page.samples
            let (rowBytes, o1) = page.width.multipliedReportingOverflow(by: pixelBytes)
            let (total, o2) = rowBytes.multipliedReportingOverflow(by: page.height)
            // No TIFF codec expands data more than about 4000:1 (LZW's longest string per
            // 9-bit code); uncompressed data cannot exceed the file. Larger claims are corrupt.
            let limit = page.compression == Int(COMPRESSION_NONE) ? bytes.count : bytes.count * 4096 + (1 << 20)
            guard !o1, !o2, total <= limit else {
                throw FormatError(file: file, offset: Int(TIFFCurrentDirOffset(tif)),
                                  "TIFF: \(page.width) x \(page.height) x \(pixelBytes) bytes cannot be stored in a \(bytes.count)-byte file")
            }
            var out = [UInt8](repeating: 0, count: total)
            try out.withUnsafeMutableBytes { destination in
                if page.tiled {
                    var tileWidth: UInt32 = 0, tileHeight: UInt32 = 0
                    _ = hrtem_tiff_get_uint32(tif, UInt32(TIFFTAG_TILEWIDTH), &tileWidth)
                    _ = hrtem_tiff_get_uint32(tif, UInt32(TIFFTAG_TILELENGTH), &tileHeight)
                    guard tileWidth > 0, tileHeight > 0, tileWidth <= 65536, tileHeight <= 65536 else {
                        throw failure(source, offset: Int(TIFFCurrentDirOffset(tif)), "bad tile size \(tileWidth) x \(tileHeight)")
                    }
                    let tileBytes = Int(tileWidth) * Int(tileHeight) * pixelBytes
                    var tile = [UInt8](repeating: 0, count: tileBytes)
                    for top in stride(from: 0, to: page.height, by: Int(tileHeight)) {
                        for left in stride(from: 0, to: page.width, by: Int(tileWidth)) {
                            let index = TIFFComputeTile(tif, UInt32(left), UInt32(top), 0, 0)
                            let n = tile.withUnsafeMutableBytes { TIFFReadEncodedTile(tif, index, $0.baseAddress, tmsize_t(tileBytes)) }
                            guard n >= 0 else { throw failure(source, "cannot decode tile \(index)") }
                            let rows = min(Int(tileHeight), page.height - top), columns = min(Int(tileWidth), page.width - left)
                            tile.withUnsafeBytes { t in
                                for r in 0..<rows {
                                    (destination.baseAddress! + (top + r) * rowBytes + left * pixelBytes)
                                        .copyMemory(from: t.baseAddress! + r * Int(tileWidth) * pixelBytes, byteCount: columns * pixelBytes)
                                }
                            }
                        }
                    }
                } else {
                    var rowsPerStrip: UInt32 = 0
                    if hrtem_tiff_get_uint32(tif, UInt32(TIFFTAG_ROWSPERSTRIP), &rowsPerStrip) != 1 || rowsPerStrip == 0 {
                        rowsPerStrip = UInt32(page.height)
                    }
                    let stripRows = min(Int(rowsPerStrip), page.height)
                    let strips = (page.height + stripRows - 1) / max(stripRows, 1)
                    for strip in 0..<strips {
                        let start = strip * stripRows * rowBytes
                        let size = min(stripRows * rowBytes, total - start)
                        let n = TIFFReadEncodedStrip(tif, UInt32(strip), destination.baseAddress! + start, tmsize_t(size))
                        guard n >= 0 else { throw failure(source, "cannot decode strip \(strip)") }
                        guard n == size else {
                            throw failure(source, "strip \(strip) holds \(n) bytes, expected \(size)")
                        }
                    }
                }
            }
            return out
        }
    }
}

/// Compression of the TIFF files hrtem writes.
public enum TIFFCompression: String, Sendable, CaseIterable {
    case none, lzw, deflate
}

/// Writes one or more 2-D rasters as a (multi-page) grayscale TIFF through libtiff.
///
/// Each page stores `P` bit-exactly (8/16/32/64-bit integers, 32/64-bit floats). `tileSize`
/// (a multiple of 16) writes tiles instead of strips; `bigTIFF` writes the 64-bit variant.
/// `pixelSizeNM` becomes the resolution tags (pixels per centimetre). Atomic.
/// - Throws: `FormatError` naming the file when libtiff reports an error.
public func writeTIFF<P: StoredPixel>(pages: [Raster<P>], to url: URL, compression: TIFFCompression = .none,
                                      tileSize: Int? = nil, bigTIFF: Bool = false, pixelSizeNM: Double? = nil,
                                      description: String? = nil) throws {
    precondition(!pages.isEmpty, "writeTIFF needs at least one page")
    if let tileSize { precondition(tileSize > 0 && tileSize % 16 == 0, "TIFF tile size must be a multiple of 16") }
    let pixelType = P.pixelType
    try writeFileAtomically(to: url, usingTemporaryPath: { temporary in
        let source = UnsafeMutablePointer<hrtem_tiff_source>.allocate(capacity: 1)
        source.initialize(to: hrtem_tiff_source())
        defer { source.deallocate() }
        guard let tif = hrtem_tiff_open_path_for_writing(temporary.path, bigTIFF ? "w8" : "w", source) else {
            throw TIFFFile(bytes: UnsafeRawBufferPointer(start: nil, count: 0), file: url.path).failure(source, offset: 0, "cannot create")
        }
        var closed = false
        defer { if !closed { TIFFClose(tif) } }
        func check(_ ok: Bool, _ what: String) throws {
            if !ok || source.pointee.has_error != 0 {
                throw TIFFFile(bytes: UnsafeRawBufferPointer(start: nil, count: 0), file: url.path).failure(source, offset: 0, what)
            }
        }
        let format: Int32 = pixelType.isFloatingPoint ? SAMPLEFORMAT_IEEEFP
            : [.int8, .int16, .int32, .int64].contains(pixelType) ? SAMPLEFORMAT_INT : SAMPLEFORMAT_UINT
        for (index, page) in pages.enumerated() {
            _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_IMAGEWIDTH), UInt32(page.width))
            _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_IMAGELENGTH), UInt32(page.height))
            _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_BITSPERSAMPLE), UInt16(pixelType.byteCount * 8))
            _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_SAMPLESPERPIXEL), 1)
            _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_SAMPLEFORMAT), UInt16(format))
            _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_PHOTOMETRIC), UInt16(PHOTOMETRIC_MINISBLACK))
            _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_PLANARCONFIG), UInt16(PLANARCONFIG_CONTIG))
            let code: Int32 = compression == .none ? COMPRESSION_NONE : compression == .lzw ? COMPRESSION_LZW : COMPRESSION_ADOBE_DEFLATE
            try check(hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_COMPRESSION), UInt16(code)) == 1, "compression \(compression) unavailable")
            if pages.count > 1 {
                _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_SUBFILETYPE), UInt32(FILETYPE_PAGE))
                _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_PAGENUMBER), UInt16(index))
            }
            if let pixelSizeNM, pixelSizeNM > 0 {
                _ = hrtem_tiff_set_uint16(tif, UInt32(TIFFTAG_RESOLUTIONUNIT), UInt16(RESUNIT_CENTIMETER))
                _ = hrtem_tiff_set_double(tif, UInt32(TIFFTAG_XRESOLUTION), 1e7 / pixelSizeNM)
                _ = hrtem_tiff_set_double(tif, UInt32(TIFFTAG_YRESOLUTION), 1e7 / pixelSizeNM)
            }
            if let description { _ = hrtem_tiff_set_string(tif, UInt32(TIFFTAG_IMAGEDESCRIPTION), description) }
            let rowBytes = page.width * pixelType.byteCount
            try page.pixels.withUnsafeBytes { pixels in
                if let tileSize {
                    _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_TILEWIDTH), UInt32(tileSize))
                    _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_TILELENGTH), UInt32(tileSize))
                    var tile = [UInt8](repeating: 0, count: tileSize * tileSize * pixelType.byteCount)
                    for top in stride(from: 0, to: page.height, by: tileSize) {
                        for left in stride(from: 0, to: page.width, by: tileSize) {
                            for i in tile.indices { tile[i] = 0 }
                            let rows = min(tileSize, page.height - top), columns = min(tileSize, page.width - left)
                            tile.withUnsafeMutableBytes { t in
                                for r in 0..<rows {
                                    (t.baseAddress! + r * tileSize * pixelType.byteCount)
                                        .copyMemory(from: pixels.baseAddress! + (top + r) * rowBytes + left * pixelType.byteCount,
                                                    byteCount: columns * pixelType.byteCount)
                                }
                            }
                            let tileIndex = TIFFComputeTile(tif, UInt32(left), UInt32(top), 0, 0)
                            let n = tile.withUnsafeMutableBytes { TIFFWriteEncodedTile(tif, tileIndex, $0.baseAddress, tmsize_t($0.count)) }
                            try check(n >= 0, "cannot write tile \(tileIndex)")
                        }
                    }
                } else {
                    let rowsPerStrip = max(1, min(page.height, (256 << 10) / max(rowBytes, 1)))
                    _ = hrtem_tiff_set_uint32(tif, UInt32(TIFFTAG_ROWSPERSTRIP), UInt32(rowsPerStrip))
                    var strip: UInt32 = 0
                    for top in stride(from: 0, to: page.height, by: rowsPerStrip) {
                        let rows = min(rowsPerStrip, page.height - top)
                        let n = TIFFWriteEncodedStrip(tif, strip, UnsafeMutableRawPointer(mutating: pixels.baseAddress! + top * rowBytes),
                                                      tmsize_t(rows * rowBytes))
                        try check(n >= 0, "cannot write strip \(strip)")
                        strip += 1
                    }
                }
            }
            try check(TIFFWriteDirectory(tif) == 1, "cannot write the image directory")
        }
        closed = true
        TIFFClose(tif)
        try check(true, "write failed")
    })
}

/// Writes one 2-D raster as a single-page TIFF. See `writeTIFF(pages:to:...)`.
public func writeTIFF<P: StoredPixel>(_ raster: Raster<P>, to url: URL, compression: TIFFCompression = .none,
                                      tileSize: Int? = nil, bigTIFF: Bool = false, pixelSizeNM: Double? = nil,
                                      description: String? = nil) throws {
    try writeTIFF(pages: [raster], to: url, compression: compression, tileSize: tileSize, bigTIFF: bigTIFF,
                  pixelSizeNM: pixelSizeNM, description: description)
}
