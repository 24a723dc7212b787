/* Floor for bench-catalog: what SQLite's C API alone costs to hand over the rows hrtem decodes.

     catalog_floor DB REPEATS COLUMNS SQL NARGS ARG... [SQL NARGS ARG...]...

   ARG is r:NUMBER (REAL), i:NUMBER (INTEGER) or t:TEXT. For each SQL (a WHERE clause over
   `frames`), the median ms of preparing `SELECT COLUMNS FROM frames WHERE SQL`, stepping every
   row and reading every column (type, then the value: what any binding must do) - no ORDER BY,
   no objects made, i.e. what CatalogStore.frames(matching:) does before it builds Swift values.
   Then the same for 10,000 consecutive rows by rowid (the best layout a table can give: rows
   adjacent on the pages). The connection is set up as CatalogStore's (mmap, cache size, SQLite's
   default serialized threading mode, as GRDB opens it). Also reports each query's first run
   (records_first): pages not yet touched by this connection. Prints one JSON object on stdout. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile long sink; /* keeps the column reads from being optimized away */

static void fail(sqlite3 *db, const char *what) {
    fprintf(stderr, "catalog_floor: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

/* Median ms over `repeats` runs; *rows gets the row count, *first the first run's ms. */
static double time_query(sqlite3 *db, const char *sql, int nargs, char **args, int repeats, int *rows,
                         double *first) {
    double *times = malloc(sizeof(double) * repeats);
    for (int run = 0; run < repeats; run++) {
        double start = now_ms();
        sqlite3_stmt *statement;
        if (sqlite3_prepare_v2(db, sql, -1, &statement, NULL) != SQLITE_OK) fail(db, sql);
        for (int i = 0; i < nargs; i++) {
            const char *arg = args[i];
            int rc = arg[0] == 'r' ? sqlite3_bind_double(statement, i + 1, strtod(arg + 2, NULL))
                   : arg[0] == 'i' ? sqlite3_bind_int64(statement, i + 1, strtoll(arg + 2, NULL, 10))
                   : sqlite3_bind_text(statement, i + 1, arg + 2, -1, SQLITE_TRANSIENT);
            if (rc != SQLITE_OK) fail(db, "bind");
        }
        int count = 0, columns = sqlite3_column_count(statement), rc;
        while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
            count++;
            for (int c = 0; c < columns; c++) {
                switch (sqlite3_column_type(statement, c)) {
                case SQLITE_INTEGER: sink += sqlite3_column_int64(statement, c); break;
                case SQLITE_FLOAT: sink += (long)sqlite3_column_double(statement, c); break;
                case SQLITE_TEXT: {
                    const unsigned char *text = sqlite3_column_text(statement, c);
                    sink += sqlite3_column_bytes(statement, c) + text[0];
                    break;
                }
                case SQLITE_BLOB: sink += sqlite3_column_bytes(statement, c); break;
                default: break;
                }
            }
        }
        if (rc != SQLITE_DONE) fail(db, "step");
        sqlite3_finalize(statement);
        times[run] = now_ms() - start;
        *rows = count;
    }
    *first = times[0];
    qsort(times, repeats, sizeof(double), by_value);
    double median = repeats % 2 ? times[repeats / 2] : (times[repeats / 2 - 1] + times[repeats / 2]) / 2;
    free(times);
    return median;
}

/* A connection set up as CatalogStore's. Each measurement opens its own: SQLite maps the file
   and caches pages per connection, so the first run on it starts from nothing. */
static sqlite3 *open_catalog(const char *path) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail(db, path);
    if (sqlite3_exec(db, "PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536", NULL, NULL, NULL) != SQLITE_OK)
        fail(db, "pragma");
    return db;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: catalog_floor DB REPEATS COLUMNS [SQL NARGS ARG...]...\n");
        return 2;
    }
    sqlite3 *db;
    int repeats = atoi(argv[2]);
    const char *columns = argv[3];
    char *sql = malloc(strlen(columns) + 100000);
    /* The first run on a new connection: what the first query of a new process pays. */
    char firsts[4096] = "";
    printf("{\"records\": [");
    for (int i = 4, index = 0; i < argc; index++) {
        const char *where = argv[i];
        int nargs = atoi(argv[i + 1]), rows;
        double first;
        snprintf(sql, strlen(columns) + 100000, "SELECT %s FROM frames WHERE %s", columns, where);
        db = open_catalog(argv[1]);
        printf("%s%.3f", index ? ", " : "", time_query(db, sql, nargs, argv + i + 2, repeats, &rows, &first));
        sqlite3_close(db);
        snprintf(firsts + strlen(firsts), sizeof firsts - strlen(firsts), "%s%.3f", index ? ", " : "", first);
        i += 2 + nargs;
    }
    printf("], \"records_first\": [%s", firsts);
    /* Consecutive rows from the middle of the table. */
    db = open_catalog(argv[1]);
    sqlite3_int64 middle = 0;
    sqlite3_stmt *statement;
    if (sqlite3_prepare_v2(db, "SELECT max(rowid) / 2 FROM frames", -1, &statement, NULL) != SQLITE_OK) fail(db, "max");
    if (sqlite3_step(statement) == SQLITE_ROW) middle = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    char bound[64];
    snprintf(bound, sizeof bound, "i:%lld", (long long)middle);
    char *args[] = {bound};
    int rows;
    double first;
    snprintf(sql, strlen(columns) + 100000, "SELECT %s FROM frames WHERE rowid > ? ORDER BY rowid LIMIT 10000", columns);
    double consecutive = time_query(db, sql, 1, args, repeats, &rows, &first);
    printf("], \"consecutive_ms\": %.3f, \"consecutive_rows\": %d}\n", consecutive, rows);
    free(sql);
    sqlite3_close(db);
    return 0;
}
