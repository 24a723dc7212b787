import ArgumentParser
import Catalog
import CatalogServer
import Foundation

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Browse and query the catalog, frames, datasets and models in a web browser.",
        discussion: """
        Serves HTML pages (no build step, nothing fetched from elsewhere) on loopback:
        the catalog with the query bar, facets and thumbnails; each frame zoomable to 1:1 with
        its label overlay, every field and DM tag; datasets, models and the matrix results.
        Read-only unless --allow-writes. Stop it with Ctrl-C.

        Examples:
          hrtem serve                      # http://127.0.0.1:8080/
          hrtem serve --port 0             # a free port, printed on start
          hrtem serve --data lab-data --allow-writes
        """)

    @OptionGroup var data: DataOptions

    @Option(help: "TCP port (0: any free port, printed on start).")
    var port = 8080

    @Option(help: "Address to listen on. Anything but loopback exposes the catalog to the network.")
    var bind = "127.0.0.1"

    @Flag(help: "Allow creating recipes from the pages (the catalog is otherwise never written).")
    var allowWrites = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
    }

    func run() async throws {
        let server = try CatalogServer(folder: data.folder, settings: .init(host: bind, port: port, allowWrites: allowWrites))
        let host = bind.contains(":") ? "[\(bind)]" : bind
        let description = "\(data.folder.url.path), " + (allowWrites ? "writes allowed" : "read-only")
        try await server.run { port in
            // Written straight to the file descriptor: a pipe reader (a test, a script) sees the
            // address at once, where print's buffer would hold it.
            FileHandle.standardOutput.write(Data("hrtem serve: http://\(host):\(port)/ (\(description))\n".utf8))
        }
    }
}
