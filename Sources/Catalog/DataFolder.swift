import Foundation

/// Where hrtem keeps its catalog (one SQLite file) and its content-addressed file store.
///
/// Resolution order: an explicit `--data DIR`, else `$HRTEM_HOME`, else `./hrtem-data`.
public struct DataFolder: Sendable, Equatable {
    public let url: URL

    public init(url: URL) { self.url = url.standardizedFileURL }

    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               currentDirectory: String = FileManager.default.currentDirectoryPath) -> DataFolder {
        let path = explicit ?? environment["HRTEM_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "hrtem-data"
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path)
                                      : URL(fileURLWithPath: currentDirectory).appendingPathComponent(path)
        return DataFolder(url: url)
    }

    /// The SQLite catalog file.
    public var catalogFile: URL { url.appendingPathComponent("catalog.sqlite") }
    /// Content-addressed store: `store/<first two hex digits>/<sha256>`.
    public var storeFolder: URL { url.appendingPathComponent("store") }
    /// Temporary files of transfers and builds in progress; same file system as the store, so
    /// publishing is a rename.
    public var temporaryFolder: URL { url.appendingPathComponent("tmp") }
    /// Materialized dataset versions: `datasets/<name>/<version id>/`.
    public var datasetsFolder: URL { url.appendingPathComponent("datasets") }
    /// Trained models: `models/<model id>/`.
    public var modelsFolder: URL { url.appendingPathComponent("models") }
}
