import Foundation
import Micrograph

// Temporary until the formats helper's writers land on main (DM3/DM4, TIFF, PNG).
public enum DMTagInput: Sendable, Equatable {
    case text(String)
    case number(Double)
    case integer(Int32)
}

func writeSyntheticFrameFile(_ frame: SyntheticFrame, entry: SyntheticStudyEntry, format: SyntheticFrameFormat,
                             to url: URL) throws {
    throw SynthesisError("frame writers are not available yet")
}

func writeLabelPNG(_ label: Raster<UInt8>, to url: URL) throws {
    throw SynthesisError("PNG writer is not available yet")
}

func writePreviewPNG(_ picture: RGBPicture, to url: URL) throws {
    throw SynthesisError("PNG writer is not available yet")
}
