"""Peer for bench-catalog: the same catalog work done from Python.

  catalog_peer.py query DB SPEC_JSON REPEATS   -> per query: median ms of Python's sqlite3 running
                                                  hrtem's compiled SQL on the same file (fetchall of
                                                  every frame column), and of NumPy boolean masks
                                                  over the columns loaded in memory (if NumPy is there)
  catalog_peer.py import CSV REPEATS           -> median ms of csv.reader + sqlite3 executemany of the
                                                  407-row table into a fresh file, one transaction

Prints one JSON object on stdout.
"""
import csv, json, os, sqlite3, statistics, sys, tempfile, time


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def queries(db, spec_path, repeats):
    spec = json.load(open(spec_path))
    con = sqlite3.connect(db)
    out = {"sqlite3": [], "numpy": [], "rows": []}
    for q in spec["queries"]:
        sql = "SELECT %s FROM frames WHERE %s ORDER BY %s" % (spec["columns"], q["sql"], spec["order"])
        args = q["arguments"]
        out["rows"].append(len(con.execute(sql, args).fetchall()))
        out["sqlite3"].append(median_ms(lambda: con.execute(sql, args).fetchall(), repeats))
    try:
        import numpy as np
    except ImportError:
        out["numpy"] = None
        return out
    cols = {}
    names = {"material", "particle_size_nm", "support", "dose", "pixel_scale_nm", "magnification_kx"}
    names |= {p["column"] for q in spec["queries"] for p in q["numpy"]}   # registered fields' columns
    for name in sorted(names):
        values = [r[0] for r in con.execute("SELECT %s FROM frames ORDER BY id" % name)]
        cols[name] = np.array(values, dtype=object if isinstance(values[0], str) else float)
    for q in spec["queries"]:
        def run():
            mask = np.ones(len(cols["material"]), dtype=bool)
            for p in q["numpy"]:
                c = cols[p["column"]]
                if "text" in p:
                    mask &= c == p["text"]
                else:
                    mask &= (c > p["low"]) & (c < p["high"])
            return np.nonzero(mask)[0]
        out["numpy"].append(median_ms(run, repeats))
    return out


def import_table(csv_path, repeats):
    folder = tempfile.mkdtemp()
    counter = [0]

    def run():
        counter[0] += 1
        con = sqlite3.connect(os.path.join(folder, "c%d.sqlite" % counter[0]))
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE frames (file_name TEXT, date TEXT, material TEXT, size REAL, shape TEXT, "
                    "support TEXT, instrument TEXT, dose REAL, pixel_scale REAL, folder TEXT, "
                    "UNIQUE(folder, file_name))")
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        with con:
            con.executemany("INSERT INTO frames VALUES (?,?,?,?,?,?,?,?,?,?)",
                            [(r[0], r[1], r[2], float(r[3]), r[4], r[5], r[6], float(r[7]), float(r[8]), r[9])
                             for r in rows])
        con.close()
    return {"import_ms": median_ms(run, repeats)}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "query":
        print(json.dumps(queries(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        print(json.dumps(import_table(sys.argv[2], int(sys.argv[3]))))
