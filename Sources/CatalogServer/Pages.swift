import Catalog
import Experiments
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import Micrograph
import Segmentation

/// The pages and the small JSON and PNG answers they load.
struct Pages: Sendable {
    let folder: DataFolder
    let store: CatalogStore
    let worker: ImageWorker
    let settings: CatalogServer.Settings
    let selections = FrameSelectionCache()
    let facetCache = Locked<[String: [Facet]]>([:])
    let datasetFrames = Locked<[String: Set<String>]>([:])
    /// Catalog pages as sent, by catalog state, query and page number: a page is a function of
    /// those, and re-rendering 100 cards is most of what a repeated request would cost.
    let renderedPages = Locked<[String: String]>([:])
    /// Dataset builds started from the page, by recipe name: the last line of progress, or
    /// the outcome.
    let builds = Locked<[String: String]>([:])

    /// The most a query may be: longer ones are refused before they are parsed.
    static let maximumQueryLength = 2000

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { request, _ in try catalogPage(request) }
        router.get("/frames/:id") { _, context in try framePage(try frameId(context)) }
        router.get("/frames/:id/thumbnail") { _, context in try await thumbnail(try frameId(context)) }
        router.get("/frames/:id/pyramid") { _, context in try pyramidStatus(try frameId(context)) }
        router.get("/frames/:id/tiles/:level/:row/:column") { _, context in
            let frame = try frameRecord(try frameId(context))
            guard let sha256 = frame.sha256 else { throw HTTPError(.notFound, message: "frame \(frame.id ?? 0) is not ingested") }
            let (level, row, column) = try tileAddress(context)
            return try pngFile(worker.images.tileFile(sha256: sha256, level: level, row: row, column: column))
        }
        router.get("/frames/:id/overlay/:level/:row/:column") { _, context in
            let id = try frameId(context)
            guard let label = try store.labels(frameId: id).first(where: { $0.sha256 != nil }), let sha256 = label.sha256 else {
                throw HTTPError(.notFound, message: "frame \(id) has no label")
            }
            let (level, row, column) = try tileAddress(context)
            return try pngFile(worker.images.overlayTileFile(root: worker.images.overlayRoot(labelSha256: sha256),
                                                             level: level, row: row, column: column))
        }
        router.get("/frames/:id/prediction") { request, context in try predictionStatus(request, context) }
        router.get("/frames/:id/prediction/:key/:level/:row/:column") { _, context in
            let frame = try frameRecord(try frameId(context))
            let key = context.parameters.get("key") ?? ""
            guard let sha256 = frame.sha256, key.count == 64, key.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw HTTPError(.badRequest, message: "a prediction is named by its model's 64-digit hex key")
            }
            let (level, row, column) = try tileAddress(context)
            return try pngFile(worker.images.overlayTileFile(root: worker.images.predictionRoot(modelKey: key, frameSha256: sha256),
                                                             level: level, row: row, column: column))
        }
        router.get("/progress") { _, _ in try json(worker.progress) }
        router.get("/datasets") { _, _ in try datasetsPage() }
        router.get("/datasets/:version/patches/:index") { _, context in try patchPicture(context) }
        router.get("/datasets/:version/verify") { _, context in try verifyAnswer(context) }
        router.get("/models") { _, _ in try modelsPage() }
        router.get("/experiments") { _, _ in try experimentsPage() }
        router.get("/assets/style.css") { _, _ in asset(Assets.stylesheet, type: "text/css; charset=utf-8") }
        router.get("/assets/app.js") { _, _ in asset(Assets.script, type: "text/javascript; charset=utf-8") }
        if settings.allowWrites {
            router.post("/recipes") { request, context in try await createRecipe(request, context: context) }
            router.post("/builds") { request, context in try await startBuild(request, context: context) }
        }
    }

    // MARK: Answers

    static let securityHeaders: HTTPFields = [
        // The pages load nothing from anywhere but this server, and run only its own script.
        HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        .cacheControl: "no-store",
    ]

    func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func json<Value: Encodable>(_ value: Value) throws -> Response {
        var headers = Self.securityHeaders
        headers[.contentType] = "application/json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    func asset(_ text: String, type: String) -> Response {
        var headers = Self.securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=3600"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A cached PNG; cached pictures never change (their names are content hashes).
    func pngFile(_ url: URL) throws -> Response {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw HTTPError(.notFound, message: "not computed yet; the page shows the progress")
        }
        var headers = Self.securityHeaders
        headers[.contentType] = "image/png"
        headers[.cacheControl] = "max-age=31536000, immutable"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Request values (all parsed strictly; none is ever used as a path)

    func frameId(_ context: BasicRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw HTTPError(.badRequest, message: "a frame is named by its catalog id, a positive integer")
        }
        return id
    }

    func frameRecord(_ id: Int64) throws -> FrameRecord {
        guard let frame = try store.frame(id: id) else { throw HTTPError(.notFound, message: "no frame \(id) in the catalog") }
        return frame
    }

    func tileAddress(_ context: BasicRequestContext) throws -> (Int, Int, Int) {
        let values = ["level", "row", "column"].map { context.parameters.get($0).flatMap { Int($0) } }
        guard let level = values[0], let row = values[1], let column = values[2],
              (0...30).contains(level), (0...4096).contains(row), (0...4096).contains(column) else {
            throw HTTPError(.badRequest, message: "a tile is /LEVEL/ROW/COLUMN, small non-negative integers")
        }
        return (level, row, column)
    }

    // MARK: Catalog

    struct Facet: Sendable {
        var field: QueryField
        var values: [(text: String, clause: String, frames: Int)]
    }

    /// The fields shown as facets: the built-in fields but those whose values are (nearly)
    /// unique, and the catalog's registered text and yes/no fields (numbers and dates of a lab's
    /// own are queried, not counted value by value).
    static func facetFields(_ registry: FieldRegistry) -> [QueryField] {
        registry.fields.filter { field in
            QueryField.allCases.contains(field) ? field != .file && field != .date : field.kind == .text || field.kind == .boolean
        }
    }

    func catalogPage(_ request: Request) throws -> Response {
        let form = formValues(request.uri.query)
        let text = (form["q"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count <= Self.maximumQueryLength else {
            throw HTTPError(.contentTooLarge, message: "the query is \(text.utf8.count) bytes; at most \(Self.maximumQueryLength)")
        }
        let pageText = form["page"] ?? "1"
        guard let pageNumber = Int(pageText), (1...10_000_000).contains(pageNumber) else {
            throw HTTPError(.badRequest, message: "page must be a positive integer, got '\(pageText.prefix(40))'")
        }
        var query: FrameQuery?
        var errorHTML = ""
        if !text.isEmpty {
            do {
                query = try FrameQuery.parse(text, fields: try store.fieldRegistry())
            } catch let error as QueryError {
                errorHTML = queryErrorHTML(error)
            }
        }
        var body = """
        <form class="query" action="/" method="get">
        <input type="text" id="query" name="q" value="\(escapeMarkup(text))" placeholder="material = &quot;Au&quot; and dose ~ 423 +- 20" autocomplete="off" spellcheck="false">
        <button type="submit" id="run-query">Query</button>
        </form>
        \(errorHTML)
        """
        guard errorHTML.isEmpty else {
            // The valid fields, unless the error itself listed them (an unknown field).
            let hint = errorHTML.contains("valid fields:") ? "" : "<p class=\"hint\">Fields: \(try store.fieldRegistry().names.joined(separator: ", ")).</p>"
            return html(pageHTML(title: "Catalog", active: "Catalog", body: body + hint),
                        status: .badRequest)
        }
        let cacheKey = "\(try store.changeCounter())\u{0}\(text)\u{0}\(pageNumber)"
        if let rendered = renderedPages.withLock({ $0[cacheKey] }) { return html(rendered) }
        let page = try store.page(matching: query, offset: (pageNumber - 1) * settings.pageSize, limit: settings.pageSize, cache: selections)
        body += "<div class=\"catalog\"><aside class=\"facets\">\(try facetsHTML(query: query, text: text))</aside><section>"
        let first = page.frames.isEmpty ? 0 : page.offset + 1
        body += "<p id=\"result-count\" data-total=\"\(page.total)\">\(page.total) frames\(page.total > 0 ? ", showing \(first)-\(page.offset + page.frames.count)" : "")</p>"
        body += pagerHTML(text: text, page: pageNumber, total: page.total)
        body += "<div class=\"grid\" id=\"grid\">"
        for frame in page.frames { body += cardHTML(frame) }
        body += "</div>" + pagerHTML(text: text, page: pageNumber, total: page.total) + "</section></div>"
        let rendered = pageHTML(title: "Catalog", active: "Catalog", body: body)
        renderedPages.withLock { pages in
            if pages.count >= 64 { pages.removeAll() }
            pages[cacheKey] = rendered
        }
        return html(rendered)
    }

    /// Fills the caches the unfiltered catalog page reads (its selection and its facets).
    func warm() {
        _ = try? store.page(matching: nil, offset: 0, limit: settings.pageSize, cache: selections)
        _ = try? facetsHTML(query: nil, text: "")
    }

    /// The CLI's message with the query and a caret under the column, in the page.
    func queryErrorHTML(_ error: QueryError) -> String {
        let caret = String(repeating: " ", count: max(0, error.column - 1)) + "^"
        var text = "<div class=\"error\" id=\"query-error\" data-column=\"\(error.column)\"><p>query error at column \(error.column): \(escapeMarkup(error.message))</p>"
        text += "<pre>\(escapeMarkup(error.query))\n\(caret)</pre>"
        if let fields = error.validFields { text += "<p>valid fields: \(escapeMarkup(fields.joined(separator: ", ")))</p>" }
        return text + "</div>"
    }

    func pagerHTML(text: String, page: Int, total: Int) -> String {
        let pages = max(1, (total + settings.pageSize - 1) / settings.pageSize)
        guard pages > 1 else { return "" }
        func link(_ number: Int, _ label: String, _ rel: String) -> String {
            "<a rel=\"\(rel)\" href=\"/?q=\(encodeQueryComponent(text))&amp;page=\(number)\">\(label)</a>"
        }
        var out = "<nav class=\"pager\">"
        if page > 1 { out += link(1, "first", "first") + " " + link(page - 1, "previous", "prev") + " " }
        out += "page \(page) of \(pages)"
        if page < pages { out += " " + link(page + 1, "next", "next") + " " + link(pages, "last", "last") }
        return out + "</nav>"
    }

    func cardHTML(_ frame: FrameRecord) -> String {
        let id = frame.id ?? 0
        let picture = frame.sha256 != nil
            ? "<img src=\"/frames/\(id)/thumbnail\" width=\"\(FrameImages.thumbnailSide)\" height=\"\(FrameImages.thumbnailSide)\" loading=\"lazy\" alt=\"\">"
            : "<div class=\"missing\">not ingested</div>"
        var facts = [frame.material, frame.particleSizeNm.map { FrameListing.number($0) + " nm" },
                     frame.dose.map { FrameListing.number($0) + " e/&Aring;&sup2;" },
                     frame.pixelScaleNm.map { FrameListing.number($0) + " nm/px" }].compactMap { $0 }
        if facts.isEmpty { facts = ["(no metadata)"] }
        return """
        <a class="card" href="/frames/\(id)" data-frame="\(id)">\(picture)<span class="file">\(escapeMarkup(frame.fileName))</span>\
        <span class="facts">\(facts.map { $0.contains("&") ? $0 : escapeMarkup($0) }.joined(separator: " &middot; "))</span>\
        <span class="session">\(escapeMarkup(frame.session))</span></a>
        """
    }

    /// Counts by each facet field (from the catalog summary) of the current selection, cached
    /// until the catalog changes.
    func facetsHTML(query: FrameQuery?, text: String) throws -> String {
        let key = "\(try store.changeCounter())\u{0}\(text)"
        let facets: [Facet]
        if let cached = facetCache.withLock({ $0[key] }) {
            facets = cached
        } else {
            facets = try Self.facetFields(try store.fieldRegistry()).map { field in
                let summary = try CatalogSummary.compute(in: store, by: [field], where: query)
                let values = summary.groups.sorted { $0.frames > $1.frames }.prefix(12).map { group -> (String, String, Int) in
                    let value = group.values[0]
                    return (value.isEmpty ? "(none)" : value, Self.clause(field, value), group.frames)
                }
                return Facet(field: field, values: values)
            }
            facetCache.withLock { cache in
                if cache.count > 64 { cache.removeAll() }
                cache[key] = facets
            }
        }
        var out = ""
        // A field no frame has a value of (a tag field of frames without tags) says nothing.
        for facet in facets where facet.values.contains(where: { !$0.clause.isEmpty }) {
            out += "<details open><summary>\(facet.field.rawValue)</summary><ul>"
            for value in facet.values {
                let combined = value.clause.isEmpty ? text : (text.isEmpty ? value.clause : "(\(text)) and \(value.clause)")
                out += "<li><a href=\"/?q=\(encodeQueryComponent(combined))\">\(escapeMarkup(value.text))</a> <span class=\"count\">\(value.frames)</span></li>"
            }
            out += "</ul></details>"
        }
        return out
    }

    /// The query clause selecting one facet value ("" when the value is unknown: the language
    /// has no test for NULL).
    static func clause(_ field: QueryField, _ value: String) -> String {
        guard !value.isEmpty else { return "" }
        switch field.kind {
        case .boolean: return value == "yes" ? field.rawValue : "not \(field.rawValue)"
        case .number: return "\(field.rawValue) = \(value)"
        case .text, .date:
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\(field.rawValue) = \"\(escaped)\""
        }
    }

    // MARK: Frame

    func framePage(_ id: Int64) throws -> Response {
        let frame = try frameRecord(id)
        let labels = try store.labels(frameId: id)
        let label = labels.first { $0.sha256 != nil }
        worker.requestPyramid(of: frame, label: label)
        var body = "<h1>\(escapeMarkup(frame.fileName))</h1><p class=\"session\">\(escapeMarkup(frame.session))</p>"
        if frame.sha256 != nil {
            body += """
            <div class="controls">
            <button id="zoom-out" type="button">&minus;</button><button id="zoom-in" type="button">+</button>
            <button id="zoom-fit" type="button">fit</button><button id="zoom-one" type="button">1:1</button>
            <span id="zoom-level"></span>
            \(label != nil ? "<label><input type=\"checkbox\" id=\"overlay-toggle\" checked> label overlay</label> <span id=\"overlay-state\">label shown</span>" : "<span id=\"overlay-state\">no label</span>")
            <span id="viewer-status"></span>
            </div>
            \(try predictionControls())
            <div id="viewer" data-frame="\(id)" data-width="\(frame.width ?? 0)" data-height="\(frame.height ?? 0)" data-label="\(label != nil)">
            <div id="canvas"><div id="tiles"></div><div id="overlay"></div></div></div>
            """
        } else {
            body += "<p class=\"missing\">This frame is not ingested: the catalog has its metadata but no file. Fetch or ingest it to see it.</p>"
        }
        body += "<div class=\"columns\"><section><h2>Fields</h2>" + detailsHTML(FrameDetails.render(frame, labels: labels)) + "</section>"
        body += "<section><h2>Datasets that use it</h2>" + (try usingDatasetsHTML(frame)) + "</section></div>"
        return html(pageHTML(title: frame.fileName, active: "Catalog", body: body))
    }

    /// A model chooser and a button that segments the frame with it (nothing without models).
    func predictionControls() throws -> String {
        let models = try store.models().filter { $0.checkpointPath != nil }
        guard !models.isEmpty else { return "" }
        let options = models.map { "<option value=\"\(escapeMarkup($0.id))\">\(escapeMarkup($0.id))</option>" }.joined()
        return """
        <div class="controls prediction"><select id="model-select">\(options)</select>
        <button id="predict" type="button">predict</button> <span id="prediction-state"></span></div>
        """
    }

    /// `hrtem show`'s text as two tables: every field with its source, then the file's tags.
    func detailsHTML(_ text: String) -> String {
        var fields = "<table id=\"fields\">", tags = ""
        var inTags = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("tags (") {
                inTags = true
                tags = "<h2>DM tags \(escapeMarkup(String(line.dropFirst(5).dropLast())))</h2><table id=\"tags\">"
                continue
            }
            if inTags {
                let parts = line.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                tags += "<tr><th>\(escapeMarkup(parts[0]))</th><td>\(escapeMarkup(parts.count > 1 ? parts[1] : ""))</td></tr>"
            } else {
                let name = String(line.prefix(22)).trimmingCharacters(in: .whitespaces)
                let value = String(line.dropFirst(22))
                fields += "<tr><th>\(escapeMarkup(name))</th><td>\(escapeMarkup(value))</td></tr>"
            }
        }
        return fields + "</table>" + (tags.isEmpty ? "<h2>DM tags</h2><p>(none)</p>" : tags + "</table>")
    }

    func usingDatasetsHTML(_ frame: FrameRecord) throws -> String {
        guard let sha256 = frame.sha256 else { return "<p>(none: not ingested)</p>" }
        let versions = try DatasetRegistry.versions(in: store)
        let using = versions.filter { version in
            let hashes = datasetFrames.withLock { $0[version.versionId] } ?? {
                let hashes = Set(((try? openVersion(version))?.info.frames ?? []).map(\.sha256))
                datasetFrames.withLock { $0[version.versionId] = hashes }
                return hashes
            }()
            return hashes.contains(sha256)
        }
        guard !using.isEmpty else { return "<p id=\"datasets-using\">(none)</p>" }
        return "<ul id=\"datasets-using\">" + using.map { "<li><a href=\"/datasets#v-\($0.versionId.prefix(12))\">\(escapeMarkup($0.name))@\($0.versionId.prefix(12))</a></li>" }.joined() + "</ul>"
    }

    func openVersion(_ version: RegisteredDatasetVersion) throws -> DatasetVersion {
        let url = version.folder.hasPrefix("/") ? URL(fileURLWithPath: version.folder) : folder.url.appendingPathComponent(version.folder)
        return try DatasetVersion.open(at: url)
    }

    func thumbnail(_ id: Int64) async throws -> Response {
        let frame = try frameRecord(id)
        do {
            guard let file = try await worker.thumbnail(of: frame) else {
                throw HTTPError(.notFound, message: "frame \(id) is not ingested")
            }
            return try pngFile(file)
        } catch let error as HTTPError {
            throw error
        } catch {
            throw HTTPError(.notFound, message: "no picture of frame \(id): \(error)")
        }
    }

    struct PyramidStatus: Encodable {
        var ready: Bool
        var progress: Double
        var error: String?
        var pyramid: FrameImages.Pyramid?
        var overlay: Bool
    }

    func pyramidStatus(_ id: Int64) throws -> Response {
        let frame = try frameRecord(id)
        guard let sha256 = frame.sha256 else { throw HTTPError(.notFound, message: "frame \(id) is not ingested") }
        let label = try store.labels(frameId: id).first { $0.sha256 != nil }
        worker.requestPyramid(of: frame, label: label)
        let progress = worker.progress
        let manifest = worker.images.pyramidManifest(sha256: sha256)
        let overlayReady = label?.sha256.map {
            FileManager.default.fileExists(atPath: worker.images.overlayManifest(root: worker.images.overlayRoot(labelSha256: $0)).path)
        } ?? false
        let pyramid = FileManager.default.contents(atPath: manifest.path).flatMap { try? JSONDecoder().decode(FrameImages.Pyramid.self, from: $0) }
        let ready = pyramid != nil && (label == nil || overlayReady) && progress.pyramids[sha256] == nil
        return try json(PyramidStatus(ready: ready, progress: ready ? 1 : progress.pyramids[sha256] ?? 0,
                                      error: progress.failures[sha256], pyramid: ready ? pyramid : nil, overlay: overlayReady))
    }

    // MARK: Datasets

    func datasetsPage() throws -> Response {
        let recipes = try RecipeStore.all(in: store)
        let versions = try DatasetRegistry.versions(in: store)
        var body = "<h1>Datasets</h1>"
        if settings.allowWrites {
            body += """
            <form class="recipe" method="post" action="/recipes"><h2>New recipe</h2>
            <input name="name" placeholder="name" required> <input name="query" placeholder="query" required size="50">
            <input name="patch" placeholder="patch" value="512" size="5"> <input name="folds" placeholder="folds" value="5" size="3">
            <button type="submit">Create</button></form>
            """
        }
        if recipes.isEmpty { body += "<p>No recipes yet: <code>hrtem dataset create NAME --where QUERY</code>.</p>" }
        for recipe in recipes {
            body += "<section class=\"recipe\" id=\"r-\(escapeMarkup(recipe.name))\"><h2>\(escapeMarkup(recipe.name))</h2>"
            if let description = recipe.description { body += "<p>\(escapeMarkup(description))</p>" }
            body += "<p>query <a href=\"/?q=\(encodeQueryComponent(recipe.query))\"><code>\(escapeMarkup(recipe.query))</code></a>; patches \(recipe.patch) px, stride \(recipe.stride), \(recipe.folds) folds, rescale \(recipe.rescale.rawValue), flat-field \(recipe.flatField ? "on" : "off"), seed \(recipe.seed)</p>"
            if settings.allowWrites {
                body += "<form method=\"post\" action=\"/builds\"><input type=\"hidden\" name=\"name\" value=\"\(escapeMarkup(recipe.name))\"><button type=\"submit\">build a version</button></form>"
            }
            if let status = builds.withLock({ $0[recipe.name] }) {
                body += "<p class=\"build-status\">\(escapeMarkup(status))</p>"
            }
            let own = versions.filter { $0.name == recipe.name }
            if own.isEmpty { body += "<p>No version built: <code>hrtem dataset build \(escapeMarkup(recipe.name))</code>.</p>" }
            for version in own { body += versionHTML(version) }
            body += "</section>"
        }
        return html(pageHTML(title: "Datasets", active: "Datasets", body: body))
    }

    func versionHTML(_ version: RegisteredDatasetVersion) -> String {
        let short = String(version.versionId.prefix(12))
        var out = "<div class=\"version\" id=\"v-\(short)\"><h3>\(escapeMarkup(version.name))@\(short)</h3>"
        out += "<p>\(version.frameCount) frames, \(version.patchCount) patches, built \(escapeMarkup(version.createdAt))</p>"
        if let opened = try? openVersion(version), let plan = try? opened.folds() {
            out += "<table class=\"folds\"><tr><th>fold</th><th>train</th><th>validation</th><th>test</th></tr>"
            for fold in plan.folds { out += "<tr><td>\(fold.fold)</td><td>\(fold.train.count)</td><td>\(fold.validation.count)</td><td>\(fold.test.count)</td></tr>" }
            out += "</table><div class=\"patches\">"
            for index in 0..<min(8, version.patchCount) {
                out += "<img src=\"/datasets/\(version.versionId)/patches/\(index)\" width=\"96\" height=\"96\" loading=\"lazy\" alt=\"patch \(index)\">"
            }
            out += "</div><p><a class=\"verify\" href=\"/datasets/\(version.versionId)/verify\">verify the files against the manifest</a></p>"
        } else {
            out += "<p class=\"error\">the version folder is missing or unreadable</p>"
        }
        return out + "</div>"
    }

    /// The registered version with exactly this id (the request's text is only compared, never
    /// used to build a path).
    func registeredVersion(_ context: BasicRequestContext) throws -> RegisteredDatasetVersion {
        let id = context.parameters.get("version") ?? ""
        guard id.count == 64, id.allSatisfy(\.isHexDigit) else {
            throw HTTPError(.badRequest, message: "a dataset version is named by its 64-digit hex id")
        }
        guard let version = try DatasetRegistry.versions(in: store).first(where: { $0.versionId == id }) else {
            throw HTTPError(.notFound, message: "no dataset version \(id.prefix(12)) in the catalog")
        }
        return version
    }

    func patchPicture(_ context: BasicRequestContext) throws -> Response {
        let version = try registeredVersion(context)
        guard let index = context.parameters.get("index").flatMap({ Int($0) }), index >= 0, index < version.patchCount else {
            throw HTTPError(.badRequest, message: "patch index out of range (0..<\(version.patchCount))")
        }
        let file = worker.images.cacheFolder.appendingPathComponent("patches").appendingPathComponent(version.versionId)
            .appendingPathComponent("\(index).png")
        if !FileManager.default.fileExists(atPath: file.path) {
            let images = try openVersion(version).images()
            guard images.shape.count >= 3, let values = images.float32Values else {
                throw HTTPError(.notFound, message: "the version's images.npy holds no float32 patches")
            }
            let side = images.shape[images.shape.count - 1], rows = images.shape[images.shape.count - 2]
            let start = index * side * rows
            guard start + side * rows <= values.count else { throw HTTPError(.notFound, message: "no patch \(index)") }
            let patch = Raster(width: side, height: rows, pixels: Array(values[start..<(start + side * rows)]))
            try writePNG(gray8: FrameImages.displayGray(patch), to: file)
        }
        return try pngFile(file)
    }

    struct Verification: Encodable { var version: String; var ok: Bool; var problems: [String] }

    func verifyAnswer(_ context: BasicRequestContext) throws -> Response {
        let version = try registeredVersion(context)
        let problems = try openVersion(version).verify()
        return try json(Verification(version: version.versionId, ok: problems.isEmpty, problems: problems))
    }

    func createRecipe(_ request: Request, context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: RequestGuard<BasicRequestContext>.maximumBodyBytes)
        let values = formValues(String(buffer: body))
        guard let name = values["name"], !name.isEmpty, let queryText = values["query"] else {
            throw HTTPError(.badRequest, message: "a recipe needs a name and a query")
        }
        var recipe = DatasetRecipe(name: name, query: queryText)
        if let patch = values["patch"].flatMap({ Int($0) }) { recipe.patch = patch; recipe.stride = patch }
        if let folds = values["folds"].flatMap({ Int($0) }) { recipe.folds = folds }
        do {
            try RecipeStore.save(recipe, in: store)
        } catch let error as QueryError {
            throw HTTPError(.badRequest, message: error.description)
        } catch {
            throw HTTPError(.badRequest, message: "\(error)")
        }
        return Response(status: .seeOther, headers: [.location: "/datasets#r-\(encodeQueryComponent(name))"])
    }

    /// Builds a recipe's version in the background (`hrtem dataset build`), one build per
    /// recipe at a time; the datasets page shows how far it got.
    func startBuild(_ request: Request, context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: RequestGuard<BasicRequestContext>.maximumBodyBytes)
        let name = formValues(String(buffer: body))["name"] ?? ""
        guard let recipe = try RecipeStore.recipe(named: name, in: store) else {
            throw HTTPError(.notFound, message: "no recipe '\(name.prefix(80))' in the catalog")
        }
        let started = builds.withLock { builds -> Bool in
            if builds[name]?.hasPrefix("building") == true { return false }
            builds[name] = "building: starting"
            return true
        }
        if started {
            let (store, folder, builds) = (self.store, self.folder, self.builds)
            Task.detached(priority: .utility) {
                do {
                    let result = try DatasetMaterializer.build(recipe, store: store, dataFolder: folder, jobs: 1) { line in
                        builds.withLock { $0[name] = "building: " + line }
                    }
                    builds.withLock { $0[name] = "built \(result.version.name)@\(result.version.versionId.prefix(12))" }
                } catch {
                    builds.withLock { $0[name] = "build failed: \(error)" }
                }
            }
        }
        return Response(status: .seeOther, headers: [.location: "/datasets#r-\(encodeQueryComponent(name))"])
    }

    // MARK: Models and experiments

    func modelsPage() throws -> Response {
        let models = try store.models()
        var body = "<h1>Models</h1>"
        if models.isEmpty { body += "<p>No models yet: <code>hrtem train DATASET</code> or <code>hrtem model import</code>.</p>" }
        for model in models {
            body += "<section class=\"model\" id=\"m-\(escapeMarkup(model.id))\"><h2>\(escapeMarkup(model.id))</h2>"
            body += "<p>dataset \(escapeMarkup(model.datasetVersion.map { String($0.prefix(12)) } ?? "?")), fold \(model.fold.map(String.init) ?? "?"), seed \(model.seed.map(String.init) ?? "?")</p>"
            if let card = model.storedCard {
                body += "<table class=\"card\">"
                let rows: [(String, String)] = [
                    ("parameters", "\(card.parameters)"), ("epochs", "\(card.epochs)"), ("best epoch", "\(card.bestEpoch)"),
                    ("best validation loss", FrameListing.number(card.bestValidationLoss)),
                    ("validation hard Dice", card.validation.map { FrameListing.number($0.hardDice) } ?? ""),
                    ("batch", "\(card.configuration.batchSize)"), ("learning rate", FrameListing.number(card.configuration.learningRate)),
                    ("training time", String(format: "%.1f s", card.trainingSeconds)), ("hrtem", card.hrtemVersion),
                ]
                for (name, value) in rows { body += "<tr><th>\(name)</th><td>\(escapeMarkup(value))</td></tr>" }
                body += "</table>"
            }
            if let modelFolder = modelFolder(model),
               let text = try? String(contentsOf: modelFolder.appendingPathComponent("training.csv"), encoding: .utf8) {
                body += trainingCurveSVG(text)
            }
            body += "</section>"
        }
        return html(pageHTML(title: "Models", active: "Models", body: body))
    }

    /// The model's folder as the catalog records it (relative paths are in the data folder).
    func modelFolder(_ model: ModelRecord) -> URL? {
        guard let path = model.checkpointPath, !path.isEmpty else { return nil }
        return path.hasPrefix("/") ? URL(fileURLWithPath: path) : folder.url.appendingPathComponent(path)
    }

    struct PredictionStatus: Encodable {
        var ready: Bool
        var key: String
        var error: String?
    }

    /// Starts (once) and reports a model's prediction on a frame; the model is named by its
    /// catalog id, compared with the registered ids, never used as a path.
    func predictionStatus(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        let frame = try frameRecord(try frameId(context))
        let name = formValues(request.uri.query)["model"] ?? ""
        guard let model = try store.models().first(where: { $0.id == name }), let modelFolder = modelFolder(model) else {
            throw HTTPError(.notFound, message: "no model '\(name.prefix(80))' with a folder in the catalog")
        }
        guard let root = worker.requestPrediction(of: frame, model: model, modelFolder: modelFolder) else {
            throw HTTPError(.notFound, message: "frame \(frame.id ?? 0) is not ingested")
        }
        let ready = FileManager.default.fileExists(atPath: worker.images.overlayManifest(root: root).path)
        return try json(PredictionStatus(ready: ready, key: ImageWorker.modelKey(model),
                                         error: worker.progress.predictionFailures[root.path]))
    }

    /// Training and validation loss per epoch from `training.csv`, as an inline SVG.
    func trainingCurveSVG(_ csv: String) -> String {
        let lines = csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        guard let header = lines.first, let train = header.firstIndex(of: "train_loss"),
              let validation = header.firstIndex(of: "validation_loss") else { return "" }
        let rows = lines.dropFirst().compactMap { row -> (Double, Double)? in
            guard row.count > max(train, validation), let t = Double(row[train]), let v = Double(row[validation]) else { return nil }
            return (t, v)
        }
        guard rows.count >= 1 else { return "" }
        let width = 360.0, height = 160.0
        let top = rows.map { max($0.0, $0.1) }.max() ?? 1, bottom = rows.map { min($0.0, $0.1) }.min() ?? 0
        let span = max(top - bottom, 1e-12)
        func points(_ value: ((Double, Double)) -> Double) -> String {
            rows.enumerated().map { index, row in
                let x = rows.count == 1 ? 0 : Double(index) / Double(rows.count - 1) * width
                let y = height - (value(row) - bottom) / span * height
                return String(format: "%.1f,%.1f", x, y)
            }.joined(separator: " ")
        }
        return """
        <figure class="curve"><svg viewBox="-4 -4 \(Int(width) + 8) \(Int(height) + 8)" width="\(Int(width) + 8)" height="\(Int(height) + 8)" role="img" aria-label="training curve">
        <polyline class="train" fill="none" points="\(points { $0.0 })"/><polyline class="validation" fill="none" points="\(points { $0.1 })"/></svg>
        <figcaption>loss per epoch (\(rows.count)): <span class="train">training</span>, <span class="validation">validation</span>; \(FrameListing.number(bottom)) to \(FrameListing.number(top))</figcaption></figure>
        """
    }

    func experimentsPage() throws -> Response {
        let rows = try store.dbQueue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT m.dataset_version, r.dataset_version, count(*), avg(r.hard_dice),
                       avg(r.hard_dice * r.hard_dice) - avg(r.hard_dice) * avg(r.hard_dice)
                FROM results r JOIN models m ON m.id = r.model_id
                WHERE r.hard_dice IS NOT NULL
                GROUP BY m.dataset_version, r.dataset_version ORDER BY m.dataset_version, r.dataset_version
                """)
        }
        let names = Dictionary((try DatasetRegistry.versions(in: store)).map { ($0.versionId, "\($0.name)@\($0.versionId.prefix(8))") },
                               uniquingKeysWith: { first, _ in first })
        func name(_ id: String?) -> String { id.map { names[$0] ?? String($0.prefix(12)) } ?? "?" }
        var body = "<h1>Experiments</h1>"
        guard !rows.isEmpty else {
            return html(pageHTML(title: "Experiments", active: "Experiments",
                                 body: body + "<p>No test results yet: <code>hrtem matrix</code> or <code>hrtem evaluate</code>.</p>"))
        }
        let trained = Array(Set(rows.map { name($0[0] as String?) })).sorted()
        let tested = Array(Set(rows.map { name($0[1] as String?) })).sorted()
        var cells: [String: String] = [:]
        for row in rows {
            let mean: Double = row[3]
            let variance: Double = (row[4] as Double?) ?? 0
            let count: Int = row[2]
            cells[name(row[0] as String?) + "\u{0}" + name(row[1] as String?)] =
                String(format: "%.3f &plusmn; %.3f", mean, max(variance, 0).squareRoot()) + " <span class=\"count\">(\(count))</span>"
        }
        body += "<p>Hard Dice, mean &plusmn; spread over models and folds; rows: trained on, columns: tested on.</p><table id=\"matrix\" class=\"matrix\"><tr><th></th>"
        body += tested.map { "<th>\(escapeMarkup($0))</th>" }.joined() + "</tr>"
        for train in trained {
            body += "<tr><th>\(escapeMarkup(train))</th>" + tested.map { "<td>\(cells[train + "\u{0}" + $0] ?? "")</td>" }.joined() + "</tr>"
        }
        return html(pageHTML(title: "Experiments", active: "Experiments", body: body + "</table>"))
    }
}
