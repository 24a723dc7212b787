import Foundation
import Micrograph

/// Writes a synthetic frame's counts as float32 (what the OneView's DM3 files hold), both axes
/// calibrated in nm at the condition's pixel scale, with the microscope tags a real frame has
/// (`syntheticFrameTags`). TIFF carries the pixel size as its resolution and the condition in
/// its description.
func writeSyntheticFrameFile(_ frame: SyntheticFrame, entry: SyntheticStudyEntry, format: SyntheticFrameFormat,
                             to url: URL) throws {
    switch format {
    case .dm3, .dm4:
        try writeDM(frame.counts, to: url, version: format == .dm3 ? .dm3 : .dm4,
                    pixelSizeNM: entry.condition.pixelScale, name: (entry.fileName as NSString).deletingPathExtension,
                    tags: syntheticFrameTags(entry, session: frame.session))
    case .tiff:
        try writeTIFF(frame.counts, to: url, pixelSizeNM: entry.condition.pixelScale,
                      description: "hrtem synthetic frame: \(entry.condition)")
    }
}

/// The label as the study stores it: 8-bit gray, 255 for particle, 0 for support.
func writeLabelPNG(_ label: Raster<UInt8>, to url: URL) throws {
    try writePNG(gray8: label.map { $0 == 0 ? 0 : 255 }, to: url)
}

func writePreviewPNG(_ picture: RGBPicture, to url: URL) throws {
    try writePNG(rgb: picture.bytes, width: picture.width, height: picture.height, to: url)
}
