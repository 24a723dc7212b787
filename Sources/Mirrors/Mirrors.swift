import Micrograph

/// The Mirrors module; see README "Layout".
public enum MirrorsModule {
    public static let name = "Mirrors"
}
