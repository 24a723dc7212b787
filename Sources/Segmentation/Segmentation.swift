import Micrograph

/// The Segmentation module; see README "Layout".
public enum SegmentationModule {
    public static let name = "Segmentation"
}
