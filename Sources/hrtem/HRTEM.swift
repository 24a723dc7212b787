import ArgumentParser
import Catalog
import Micrograph

@main
struct HRTEM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hrtem",
        abstract: "Catalog, fetch, preprocess and train on HRTEM data; measure how segmentation generalizes.",
        discussion: """
        Data lives in a data folder: --data DIR, else $HRTEM_HOME, else ./hrtem-data.
        Start with `hrtem import-metadata`, `hrtem ingest` or `hrtem synth`; see README.md for a tour.
        """,
        version: hrtemVersion,
        // Each issue's commands are added here, one line each, in the order of the data flow.
        subcommands: [
            SynthCommand.self,
            ImportMetadataCommand.self,
            MirrorCommand.self,
            FetchCommand.self,
            IngestCommand.self,
            LabelboxCommand.self,
            ShowCommand.self,
            FieldCommand.self,
            SetCommand.self,
            HistoryCommand.self,
            QueryCommand.self,
            SummaryCommand.self,
            DatasetCommand.self,
            TrainCommand.self,
            EvaluateCommand.self,
            SegmentCommand.self,
            ParticlesCommand.self,
            RecommendCommand.self,
            ModelCommand.self,
            MatrixCommand.self,
            SweepCommand.self,
            ServeCommand.self,
        ]
    )
}

/// The options every command that touches the catalog takes.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "Data folder (default: $HRTEM_HOME or ./hrtem-data).")
    var dataPath: String?

    var folder: DataFolder { DataFolder.resolve(explicit: dataPath) }
}
