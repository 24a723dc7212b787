import Experiments
import Foundation

/// A query-string component: everything but unreserved characters percent-encoded.
func encodeQueryComponent(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
}

/// The page frame every page shares: navigation, the stylesheet and the script (both served by
/// this server; the pages fetch nothing from anywhere else).
func pageHTML(title: String, active: String, body: String) -> String {
    let links = [("/", "Catalog"), ("/datasets", "Datasets"), ("/models", "Models"), ("/experiments", "Experiments")]
        .map { href, name in "<a href=\"\(href)\"\(name == active ? " class=\"active\"" : "")>\(name)</a>" }
        .joined(separator: " ")
    return """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>\(escapeMarkup(title)) - hrtem</title>
    <link rel="stylesheet" href="/assets/style.css">
    <script src="/assets/app.js" defer></script>
    </head><body>
    <header><span class="brand">hrtem</span> <nav>\(links)</nav> <span id="progress" class="progress"></span></header>
    <main>
    \(body)
    </main></body></html>
    """
}

/// The values of an `application/x-www-form-urlencoded` text (a GET form's query string or a
/// POST body): `+` is a space, then percent escapes are decoded. A later duplicate wins.
func formValues(_ encoded: String?) -> [String: String] {
    var values: [String: String] = [:]
    for pair in (encoded ?? "").split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
            String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
        }
        if parts.count == 2 { values[parts[0]] = parts[1] }
    }
    return values
}
