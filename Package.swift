// swift-tools-version:6.0
import PackageDescription

// One module per concern, in the order data flows (see README "Layout"):
// Micrograph <- Preprocessing <- Catalog <- Experiments; Mirrors <- Catalog;
// Segmentation <- Preprocessing (the study's augmentations); Synthesis depends only on
// Micrograph. The `hrtem` executable is thin.
let package = Package(
    name: "hrtem",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hrtem", targets: ["hrtem"]),
        .library(name: "Micrograph", targets: ["Micrograph"]),
        .library(name: "Preprocessing", targets: ["Preprocessing"]),
        .library(name: "Catalog", targets: ["Catalog"]),
        .library(name: "Mirrors", targets: ["Mirrors"]),
        .library(name: "Segmentation", targets: ["Segmentation"]),
        .library(name: "Synthesis", targets: ["Synthesis"]),
        .library(name: "Experiments", targets: ["Experiments"]),
        .library(name: "TorchArchive", targets: ["TorchArchive"]),
        .library(name: "CatalogServer", targets: ["CatalogServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // System libraries: a module map plus a shim of typed wrappers for variadic C calls.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CTIFF", path: "Sources/CTIFF", pkgConfig: "libtiff-4",
                       providers: [.apt(["libtiff-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),

        .target(name: "Micrograph", dependencies: ["CTIFF", "CPNG", "CCrypto", "CHDF5"]),
        .target(name: "Preprocessing", dependencies: ["Micrograph"]),
        .target(name: "Mirrors", dependencies: ["Micrograph", "CCurl"]),
        .target(name: "Catalog",
                dependencies: ["Micrograph", "Preprocessing", "Mirrors", "CHDF5",
                               .product(name: "GRDB", package: "GRDB.swift"),
                               // SQLite's C API, for decoding query results column by column.
                               .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        .target(name: "CKernels"),
        .target(name: "Segmentation", dependencies: ["Micrograph", "Preprocessing", "CBLAS", "CKernels"]),
        .target(name: "Synthesis", dependencies: ["Micrograph"]),
        // PyTorch checkpoint files (zip + pickle) read without running Python: a restricted
        // unpickler that only rebuilds tensors and records module state.
        .target(name: "TorchArchive",
                dependencies: ["Micrograph", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .target(name: "Experiments",
                dependencies: ["Catalog", "Segmentation", "Preprocessing", "Micrograph", "Mirrors", "TorchArchive",
                               .product(name: "GRDB", package: "GRDB.swift")]),
        // `hrtem serve`: the catalog, frames, datasets and models in a browser (Hummingbird).
        .target(name: "CatalogServer",
                dependencies: ["Catalog", "Experiments", "Micrograph", "Preprocessing", "Segmentation",
                               .product(name: "GRDB", package: "GRDB.swift"),
                               .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "HTTPTypes", package: "swift-http-types")]),
        .executableTarget(
            name: "hrtem",
            dependencies: ["Micrograph", "Preprocessing", "Catalog", "Mirrors", "Segmentation",
                           "Synthesis", "Experiments", "CatalogServer",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Benchmark programs: each prints hrtem's figure and the peer's side by side
        // (`make bench`, or `make bench-NAME`). Peer scripts live in Benchmarks/peers/.
        .executableTarget(name: "bench-catalog", dependencies: ["Catalog", "Micrograph"],
                          path: "Benchmarks/catalog"),
        .executableTarget(name: "bench-formats", dependencies: ["Micrograph", "Catalog"],
                          path: "Benchmarks/formats"),
        .executableTarget(name: "bench-mirrors", dependencies: ["Mirrors", "Micrograph"],
                          path: "Benchmarks/mirrors"),
        .executableTarget(name: "bench-preprocessing", dependencies: ["Preprocessing", "Catalog", "Micrograph"],
                          path: "Benchmarks/preprocessing"),
        .executableTarget(name: "bench-synthesis", dependencies: ["Synthesis", "Micrograph"],
                          path: "Benchmarks/synthesis"),
        .executableTarget(name: "bench-torch-import", dependencies: ["TorchArchive", "Experiments", "Catalog", "Micrograph"],
                          path: "Benchmarks/torch-import"),
        .executableTarget(name: "bench-serve", dependencies: ["CatalogServer", "Catalog", "Micrograph"],
                          path: "Benchmarks/serve"),
        .executableTarget(name: "bench-trainer", dependencies: ["Segmentation", "Micrograph", "BenchmarkSupport"],
                          path: "Benchmarks/trainer"),
        .executableTarget(name: "bench-ensemble", dependencies: ["Segmentation", "Micrograph", "BenchmarkSupport"],
                          path: "Benchmarks/ensemble"),
        // What the benchmark programs share: peak memory, processor time, finding a Python with torch.
        .target(name: "BenchmarkSupport", path: "Benchmarks/support"),

        // Shared by the test targets only: locating ../shared/reference, temporary folders,
        // running the built `hrtem` binary.
        .target(name: "TestSupport", dependencies: ["Micrograph", "Preprocessing"], path: "Sources/TestSupport"),

        .testTarget(name: "MicrographTests", dependencies: ["Micrograph", "TestSupport"]),
        .testTarget(name: "PreprocessingTests", dependencies: ["Preprocessing", "Micrograph", "TestSupport"]),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog", "Micrograph", "TestSupport"]),
        .testTarget(name: "MirrorsTests", dependencies: ["Mirrors", "Micrograph", "TestSupport"]),
        .testTarget(name: "SegmentationTests", dependencies: ["Segmentation", "Preprocessing", "Micrograph", "TestSupport"]),
        .testTarget(name: "TorchArchiveTests", dependencies: ["TorchArchive", "Micrograph", "TestSupport"]),
        .testTarget(name: "SynthesisTests",
                    dependencies: ["Synthesis", "Preprocessing", "Micrograph", "TestSupport"]),
        .testTarget(name: "ExperimentsTests",
                    dependencies: ["Experiments", "Catalog", "Segmentation", "Preprocessing", "TorchArchive", "Micrograph", "TestSupport"]),
        .testTarget(name: "CatalogServerTests",
                    dependencies: ["CatalogServer", "Catalog", "Experiments", "Micrograph", "TestSupport",
                                   .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(name: "HrtemCLITests",
                    dependencies: ["TestSupport", "Micrograph", "Preprocessing", "Catalog", "Segmentation", "TorchArchive"]),
    ],
    swiftLanguageModes: [.v6]
)
