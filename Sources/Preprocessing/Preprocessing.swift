import Micrograph

/// The Preprocessing module; see README "Layout".
public enum PreprocessingModule {
    public static let name = "Preprocessing"
}
