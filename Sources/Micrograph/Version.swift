/// The version of hrtem, written into model cards, recipes, User-Agent headers and reports.
public let hrtemVersion = "0.1.0"
