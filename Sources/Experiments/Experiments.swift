import Micrograph

/// The Experiments module; see README "Layout".
public enum ExperimentsModule {
    public static let name = "Experiments"
}
