import Micrograph

/// The Synthesis module; see README "Layout".
public enum SynthesisModule {
    public static let name = "Synthesis"
}
