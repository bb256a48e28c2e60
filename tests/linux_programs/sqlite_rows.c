/* A SQLite workload for rrtool's Linux platform: create a database file, insert rows in transactions,
 * query through an index. Linked statically against Debian's libsqlite3.a. Usage: sqlite_rows DB ROWS */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

static void check(int rc, sqlite3 *db, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "test.db";
    int rows = argc > 2 ? atoi(argv[2]) : 10000;
    sqlite3 *db;
    sqlite3_stmt *ins, *q;
    check(sqlite3_open(path, &db), db, "open");
    check(sqlite3_exec(db, "create table if not exists t(id integer primary key, k text, v integer);"
                           "create index if not exists t_k on t(k);", 0, 0, 0), db, "schema");
    check(sqlite3_prepare_v2(db, "insert into t(k, v) values(?, ?)", -1, &ins, 0), db, "prepare insert");
    for (int i = 0; i < rows; i++) {
        char key[32];
        if (i % 1000 == 0)
            check(sqlite3_exec(db, "begin", 0, 0, 0), db, "begin");
        snprintf(key, sizeof key, "key%07d", (i * 7919) % rows);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(ins, 2, i);
        check(sqlite3_step(ins), db, "insert");
        sqlite3_reset(ins);
        if (i % 1000 == 999 || i == rows - 1)
            check(sqlite3_exec(db, "commit", 0, 0, 0), db, "commit");
    }
    sqlite3_finalize(ins);
    check(sqlite3_prepare_v2(db, "select count(*), sum(v) from t where k between 'key0001000' and 'key0001999'",
                             -1, &q, 0), db, "prepare query");
    check(sqlite3_step(q), db, "query");
    printf("rows in range: %d, sum %lld\n", sqlite3_column_int(q, 0), (long long)sqlite3_column_int64(q, 1));
    sqlite3_finalize(q);
    check(sqlite3_prepare_v2(db, "select count(*) from t", -1, &q, 0), db, "prepare count");
    check(sqlite3_step(q), db, "count");
    printf("total rows: %d\n", sqlite3_column_int(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    return 0;
}
