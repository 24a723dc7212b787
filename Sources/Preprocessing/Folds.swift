import Foundation

/// How patches are split into cross-validation folds.
public enum FoldRule: String, Sendable, Codable, CaseIterable {
    /// The study's: contiguous blocks of the stored patch order (patches of one frame may land
    /// in train and test).
    case study
    /// No frame contributes patches to more than one of train / validation / test.
    case frame
    /// No session contributes patches to more than one of train / validation / test.
    case session
}

/// How a recipe keeps patches of one group together when forming folds. Recipes store the raw
/// value (it enters version ids): `none` is the study's contiguous folds (`study` is read as
/// `none`).
public enum FoldGrouping: String, Sendable, Codable, CaseIterable {
    case none, frame, session

    public var rule: FoldRule {
        switch self {
        case .none: .study
        case .frame: .frame
        case .session: .session
        }
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let grouping = text == "study" ? FoldGrouping.none : FoldGrouping(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "groupFoldsBy must be none, frame or session, not \(text)"))
        }
        self = grouping
    }
}

/// The study's per-fold seeds (fold 0...4). Folds beyond the fifth get `10_000 + fold`.
public let studyFoldSeeds: [Int] = [962, 1662, 621, 72115, 45521]

public func foldSeed(_ fold: Int) -> Int { fold < studyFoldSeeds.count ? studyFoldSeeds[fold] : 10_000 + fold }

/// One fold: row indices (into the stored, shuffled patch order of `images.npy`), each list ascending.
public struct Fold: Sendable, Equatable, Codable {
    public var fold: Int
    public var seed: Int
    public var train: [Int]
    public var validation: [Int]
    public var test: [Int]

    public init(fold: Int, seed: Int, train: [Int], validation: [Int], test: [Int]) {
        self.fold = fold
        self.seed = seed
        self.train = train
        self.validation = validation
        self.test = test
    }
}

/// The contents of `folds.json` (format 1). The trainer reads it; the key order below is the
/// file's.
public struct FoldPlan: Sendable, Equatable, Codable {
    public var format: Int = 1
    public var k: Int
    public var rule: FoldRule
    public var folds: [Fold]

    public init(k: Int, rule: FoldRule, folds: [Fold]) { self.k = k; self.rule = rule; self.folds = folds }

    /// Canonical bytes: `{"format": 1, "k": 5, "rule": "study", "folds": [{"fold": 0, "seed": 962,
    /// "train": [...], "validation": [...], "test": [...]}, ...]}` with a newline at the end.
    public func jsonBytes() -> Data {
        func list(_ values: [Int]) -> String { "[" + values.map(String.init).joined(separator: ", ") + "]" }
        var text = "{\"format\": \(format), \"k\": \(k), \"rule\": \"\(rule.rawValue)\", \"folds\": ["
        text += folds.map { f in
            "\n  {\"fold\": \(f.fold), \"seed\": \(f.seed), \"train\": \(list(f.train)), \"validation\": \(list(f.validation)), \"test\": \(list(f.test))}"
        }.joined(separator: ",")
        text += "\n]}\n"
        return Data(text.utf8)
    }

    /// Reads `folds.json`.
    public static func read(from url: URL) throws -> FoldPlan {
        try JSONDecoder().decode(FoldPlan.self, from: Data(contentsOf: url))
    }
}

/// NumPy `array_split` sizes: the first `count % parts` parts get one extra element.
public func arraySplitSizes(count: Int, parts: Int) -> [Int] {
    precondition(parts > 0)
    return (0..<parts).map { count / parts + ($0 < count % parts ? 1 : 0) }
}

/// Validation size of a fold: `floor(fraction * remaining)` (the study's `int(0.125 * n)`).
public func validationCount(remaining: Int, fraction: Double = 0.125) -> Int { Int(fraction * Double(remaining)) }

/// The study's folds over `count` patches in stored order: test = block i of `array_split` into
/// k; validation = the `validationCount` patches right after the test block (for the last fold,
/// the ones right before it); train = the rest. 355 patches -> 249 / 35 / 71; 430 -> 301 / 43 / 86.
public func studyFolds(count: Int, k: Int = 5, validationFraction: Double = 0.125) -> FoldPlan {
    let sizes = arraySplitSizes(count: count, parts: k)
    var folds = [Fold]()
    var start = 0
    for i in 0..<k {
        let test = Array(start..<(start + sizes[i]))
        let nval = validationCount(remaining: count - test.count, fraction: validationFraction)
        let validation = i < k - 1 ? Array((start + sizes[i])..<min(count, start + sizes[i] + nval))
                                   : Array(max(0, start - nval)..<start)
        let excluded = Set(test).union(validation)
        folds.append(Fold(fold: i, seed: foldSeed(i), train: (0..<count).filter { !excluded.contains($0) },
                          validation: validation, test: test))
        start += sizes[i]
    }
    return FoldPlan(k: k, rule: .study, folds: folds)
}

/// Folds that cannot be formed: too few groups (frames or sessions) for the folds asked.
public struct FoldError: Error, CustomStringConvertible, Equatable, Sendable {
    public var rule: FoldRule
    public var groups: Int
    public var folds: Int

    public var description: String {
        "\(groups) distinct \(rule.rawValue)s cannot make \(folds) folds grouped by \(rule.rawValue); use fewer folds or --group-folds-by none"
    }
}

/// Folds in which every group (a frame or a session; `groups[p]` names patch p's group, patches
/// in stored order) lies wholly in one of train / validation / test of each fold.
///
/// Groups are ordered by first appearance in the stored order and cut into k contiguous runs
/// whose patch counts come closest to `array_split`'s (a group goes to the fold its middle patch
/// would fall in). Validation: whole groups following the test run (wrapping to the start), added
/// while the count stays within `validationFraction` of the remaining patches (at least one
/// group when more than one group remains outside the test run).
/// - Throws: `FoldError` when there are fewer groups than folds.
public func groupedFolds(groups: [String], k: Int = 5, rule: FoldRule, validationFraction: Double = 0.125) throws -> FoldPlan {
    var order = [String]()
    var members = [String: [Int]]()
    for (p, g) in groups.enumerated() {
        if members[g] == nil { order.append(g) }
        members[g, default: []].append(p)
    }
    guard order.count >= k else {
        throw FoldError(rule: rule, groups: order.count, folds: k)
    }
    let count = groups.count
    // fold of each group: where its middle patch falls in the array_split boundaries
    let sizes = arraySplitSizes(count: count, parts: k)
    var bounds = [Int]()
    var acc = 0
    for s in sizes { acc += s; bounds.append(acc) }
    var foldOfGroup = [Int]()
    var seen = 0
    for g in order {
        let size = members[g]!.count
        let middle = Double(seen) + Double(size) / 2
        var f = bounds.firstIndex { Double($0) > middle } ?? (k - 1)
        if let last = foldOfGroup.last { f = max(f, last) }
        foldOfGroup.append(f)
        seen += size
    }
    // every fold needs a group: an empty fold takes the first group of a later fold, else the
    // last group of an earlier fold that has more than one
    for f in 0..<k where !foldOfGroup.contains(f) {
        if let i = foldOfGroup.firstIndex(where: { $0 > f }) {
            foldOfGroup[i] = f
        } else if let i = foldOfGroup.lastIndex(where: { g in g < f && foldOfGroup.filter { $0 == g }.count > 1 }) {
            foldOfGroup[i] = f
        }
    }
    var folds = [Fold]()
    for i in 0..<k {
        let testGroups = order.indices.filter { foldOfGroup[$0] == i }
        let test = testGroups.flatMap { members[order[$0]]! }.sorted()
        let target = validationCount(remaining: count - test.count, fraction: validationFraction)
        var validationGroups = [Int]()
        var validationSize = 0
        let startGroup = (testGroups.last ?? 0) + 1
        for step in 0..<order.count {
            let g = (startGroup + step) % order.count
            if foldOfGroup[g] == i { continue }
            let size = members[order[g]]!.count
            if validationGroups.isEmpty || validationSize + size <= target {
                if validationGroups.isEmpty && order.count - testGroups.count < 2 { break }
                validationGroups.append(g)
                validationSize += size
            } else { break }
        }
        let validation = validationGroups.flatMap { members[order[$0]]! }.sorted()
        let excluded = Set(test).union(validation)
        folds.append(Fold(fold: i, seed: foldSeed(i), train: (0..<count).filter { !excluded.contains($0) },
                          validation: validation, test: test))
    }
    return FoldPlan(k: k, rule: rule, folds: folds)
}
