"""Metadata every asset attaches: row count, schema and a preview of the table it built."""


from dagster import MetadataValue, TableColumn, TableSchema


def table_metadata(con, table: str, preview_rows: int = 5) -> dict:
    described = con.execute(f"DESCRIBE {table}").fetchall()
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    preview = con.sql(f"SELECT * FROM {table} LIMIT {preview_rows}").pl()
    return {
        "table": MetadataValue.text(table),
        "dagster/row_count": MetadataValue.int(rows),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=name, type=str(dtype)) for name, dtype, *_ in described]
        ),
        "preview": MetadataValue.md(_markdown(preview)),
    }


def _markdown(df) -> str:
    cols = df.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v)[:40] for v in row) + " |")
    return "\n".join(lines)
