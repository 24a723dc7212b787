import GRDB

/// The catalog's schema as named, append-only migrations.
///
/// Never edit a migration that has shipped: add a new one (`v2-...`) that alters or adds. The
/// first migration lays out every table the pipeline needs, so later issues add columns only
/// when they truly need them.
///
/// Units and conventions of the `frames` columns: `particle_size_nm` (nm), `dose` (e/A^2),
/// `dose_rate` (e/A^2/s), `exposure_s` (s), `pixel_scale_nm` (nm per pixel),
/// `magnification_kx` (thousands), `date` ISO `yyyy-mm-dd`. JSON columns hold UTF-8 JSON text.
public enum CatalogSchema {
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-catalog") { db in
            try db.execute(sql: """
            CREATE TABLE sessions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                folder TEXT NOT NULL UNIQUE,
                date TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );

            CREATE TABLE frames (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                session TEXT NOT NULL REFERENCES sessions(folder) ON UPDATE CASCADE,
                file_name TEXT NOT NULL,
                metadata_source TEXT,
                metadata_row INTEGER,
                material TEXT,
                particle_size_nm REAL,
                shape TEXT,
                support TEXT,
                instrument TEXT,
                dose REAL,
                dose_rate REAL,
                exposure_s REAL,
                pixel_scale_nm REAL,
                magnification_kx REAL,
                date TEXT,
                path TEXT,
                byte_size INTEGER,
                sha256 TEXT,
                format TEXT,
                width INTEGER,
                height INTEGER,
                pixel_type TEXT,
                ingested_at TEXT,
                facts TEXT,
                UNIQUE (session, file_name)
            );
            CREATE INDEX frames_material_size ON frames(material, particle_size_nm);
            CREATE INDEX frames_material_scale ON frames(material, pixel_scale_nm);
            CREATE INDEX frames_size ON frames(particle_size_nm);
            CREATE INDEX frames_dose ON frames(dose);
            CREATE INDEX frames_pixel_scale ON frames(pixel_scale_nm);
            CREATE INDEX frames_date ON frames(date);
            CREATE INDEX frames_file_name ON frames(file_name);
            CREATE INDEX frames_sha256 ON frames(sha256);

            CREATE TABLE labels (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
                source TEXT NOT NULL,
                path TEXT,
                sha256 TEXT,
                format TEXT,
                width INTEGER,
                height INTEGER,
                particle_pixels INTEGER,
                labelbox TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                UNIQUE (frame_id, source)
            );

            CREATE TABLE mirrors (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                base_url TEXT NOT NULL,
                settings TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );

            CREATE TABLE recipes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                definition TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );

            CREATE TABLE dataset_versions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                recipe_id INTEGER REFERENCES recipes(id),
                version_id TEXT NOT NULL UNIQUE,
                folder TEXT NOT NULL,
                frame_count INTEGER,
                patch_count INTEGER,
                manifest_sha256 TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );
            CREATE INDEX dataset_versions_recipe ON dataset_versions(recipe_id);

            CREATE TABLE models (
                id TEXT PRIMARY KEY,
                dataset_version TEXT REFERENCES dataset_versions(version_id),
                fold INTEGER,
                seed INTEGER,
                settings TEXT,
                checkpoint_path TEXT,
                card TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );
            CREATE INDEX models_dataset_version ON models(dataset_version);

            CREATE TABLE results (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
                dataset_version TEXT NOT NULL REFERENCES dataset_versions(version_id),
                scope TEXT NOT NULL,
                hard_dice REAL,
                soft_dice REAL,
                loss REAL,
                fp_rate REAL,
                fn_rate REAL,
                per_patch TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                UNIQUE (model_id, dataset_version, scope)
            );
            CREATE INDEX results_dataset_version ON results(dataset_version);
            """)
        }
        // Frame queries combine a few low-cardinality fields (3 materials, 4 sizes, 5 pixel
        // scales...): no single-column index narrows them enough, so the indexes lead with
        // the equality-tested text field, then the fields the study selects on. SQLite seeks
        // on the leading equality and range and tests the later columns inside the index
        // before touching the table (deferred seek).
        migrator.registerMigration("v2-query-indexes") { db in
            try db.execute(sql: """
            DROP INDEX frames_material_size;
            DROP INDEX frames_material_scale;
            DROP INDEX frames_size;
            CREATE INDEX frames_material_size_scale_dose
                ON frames(material, particle_size_nm, pixel_scale_nm, dose);
            CREATE INDEX frames_material_scale_size_dose
                ON frames(material, pixel_scale_nm, particle_size_nm, dose);
            CREATE INDEX frames_support_magnification_dose ON frames(support, magnification_kx, dose);
            """)
        }
        // v2's indexes let SQLite seek only the leading equality and one range, and the ids
        // and catalog order of the selected frames still came from the table (metadata_row),
        // one scattered row read per frame. `FrameQuery.compile(in:)` now turns numeric
        // ranges into exact value lists, so every column of these indexes can be sought; each
        // ends in metadata_row so that counts, ids and their order are read from the index
        // alone. Two material-led orders cover material with any of size / pixel scale and
        // with size + dose (the study's recipes use all four). frames_size and
        // frames_magnification let `StoredValues` step through those fields' distinct values
        // (frames_dose and frames_pixel_scale already do for theirs).
        migrator.registerMigration("v3-exact-seek-covering-indexes") { db in
            try db.execute(sql: """
            DROP INDEX frames_material_size_scale_dose;
            DROP INDEX frames_material_scale_size_dose;
            DROP INDEX frames_support_magnification_dose;
            CREATE INDEX frames_material_scale_size_dose_row
                ON frames(material, pixel_scale_nm, particle_size_nm, dose, metadata_row);
            CREATE INDEX frames_material_size_dose_scale_row
                ON frames(material, particle_size_nm, dose, pixel_scale_nm, metadata_row);
            CREATE INDEX frames_support_magnification_dose_row
                ON frames(support, magnification_kx, dose, metadata_row);
            CREATE INDEX frames_size ON frames(particle_size_nm);
            CREATE INDEX frames_magnification ON frames(magnification_kx);
            """)
        }
        // Fields as data: the study's fields stay the `frames` columns above; every other field a
        // lab records is registered in `fields`, and `FieldRegistry.add` gives it a typed
        // `frames` column of its own (`field_<id>`: REAL numbers, TEXT dates and text, INTEGER
        // 0/1 booleans) with a single-column index, so a test on it is a seek, and so composite
        // indexes (`hrtem field index`) can cover queries that mix it with the study's fields,
        // as v3's do for those. `value_sources` says where each value of a frame came from and
        // `value_history` keeps every change. The fields the DM tags fill are registered here,
        // with their columns, so every catalog has them.
        migrator.registerMigration("v4-metadata-fields") { db in
            try db.execute(sql: """
            CREATE TABLE fields (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL CHECK (type IN ('number', 'text', 'date', 'boolean')),
                unit TEXT,
                description TEXT,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            );
            CREATE TABLE value_sources (
                frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
                field TEXT NOT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                PRIMARY KEY (frame_id, field)
            ) WITHOUT ROWID;
            CREATE TABLE value_history (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
                field TEXT NOT NULL,
                old_value TEXT,
                new_value TEXT,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            );
            CREATE INDEX value_history_frame ON value_history(frame_id, id);
            INSERT INTO fields (id, name, type, unit, description) VALUES
                (1, 'voltage', 'number', 'kV', 'accelerating voltage'),
                (2, 'camera', 'text', NULL, 'camera or detector name'),
                (3, 'binning', 'number', NULL, 'camera binning'),
                (4, 'operator', 'text', NULL, 'operator (session info)'),
                (5, 'specimen', 'text', NULL, 'specimen (session info)'),
                (6, 'tilt', 'number', 'deg', 'stage alpha tilt'),
                (7, 'acquisition_time', 'text', NULL, 'acquisition time of day');
            ALTER TABLE frames ADD COLUMN field_1 REAL;
            ALTER TABLE frames ADD COLUMN field_2 TEXT;
            ALTER TABLE frames ADD COLUMN field_3 REAL;
            ALTER TABLE frames ADD COLUMN field_4 TEXT;
            ALTER TABLE frames ADD COLUMN field_5 TEXT;
            ALTER TABLE frames ADD COLUMN field_6 REAL;
            ALTER TABLE frames ADD COLUMN field_7 TEXT;
            CREATE INDEX frames_field_1 ON frames(field_1);
            CREATE INDEX frames_field_2 ON frames(field_2);
            CREATE INDEX frames_field_3 ON frames(field_3);
            CREATE INDEX frames_field_4 ON frames(field_4);
            CREATE INDEX frames_field_5 ON frames(field_5);
            CREATE INDEX frames_field_6 ON frames(field_6);
            CREATE INDEX frames_field_7 ON frames(field_7);
            """)
        }
        return migrator
    }
}
