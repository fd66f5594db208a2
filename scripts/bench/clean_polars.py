"""Peer of `ecom clean --seed-compat` for scripts/bench-clean.sh: the seed's cleaning
with the polars Python API.

Seed semantics: a typed tab-separated read with header (amount as a double, every
other column a string) in which a value that does not parse becomes null, missing
trailing fields become null and extra fields are ignored, invalid UTF-8 is decoded
lossily; then every row holding a null is dropped, and the payment typos
`Credit Car` and `Debit Car` are replaced in payment_method only. Output: Parquet.

Prints one JSON line: rows_in, rows_out, seconds (read to written, interpreter
start-up and `import polars` excluded), plus the polars version and thread count.

Usage: clean_polars.py INPUT.tsv OUTPUT.parquet [--lazy]
  --lazy  scan_csv + sink_parquet (streaming engine) instead of read_csv + write_parquet.
"""

import json
import sys
import time

import polars as pl

SCHEMA = {
    "order_id": pl.String,
    "user_id": pl.String,
    "category": pl.String,
    "amount": pl.Float64,
    "payment_method": pl.String,
    "status": pl.String,
    "timestamp": pl.String,
}

# Options that give Spark's permissive reading: unparseable amount -> null
# (ignore_errors), too few fields -> nulls, too many -> extra ones ignored
# (truncate_ragged_lines), invalid UTF-8 -> U+FFFD (utf8-lossy), empty field -> null.
READ_OPTIONS = dict(
    has_header=True,
    separator="\t",
    schema=SCHEMA,
    ignore_errors=True,
    truncate_ragged_lines=True,
    encoding="utf8-lossy",
    empty_string_is_null=True,
)

TYPOS = {"Credit Car": "Credit Card", "Debit Car": "Debit Card"}


def fix_typos() -> pl.Expr:
    return pl.col("payment_method").replace(TYPOS)


def eager(src: str, dst: str) -> tuple[int, int]:
    df = pl.read_csv(src, **READ_OPTIONS)
    rows_in = df.height
    out = df.drop_nulls().with_columns(fix_typos())
    out.write_parquet(dst, compression="snappy")
    return rows_in, out.height


def lazy(src: str, dst: str) -> tuple[int, int]:
    lf = pl.scan_csv(src, **READ_OPTIONS)
    lf.drop_nulls().with_columns(fix_typos()).sink_parquet(dst, compression="snappy")
    return -1, -1  # the streaming sink does not tell: counted after the timed part


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    src, dst = args
    mode = "lazy" if "--lazy" in sys.argv else "eager"
    start = time.perf_counter()
    rows_in, rows_out = (lazy if mode == "lazy" else eager)(src, dst)
    seconds = time.perf_counter() - start
    if rows_in < 0:
        rows_in = pl.scan_csv(src, **READ_OPTIONS).select(pl.len()).collect().item()
        rows_out = pl.scan_parquet(dst).select(pl.len()).collect().item()
    print(
        json.dumps(
            {
                "tool": "polars-python",
                "mode": mode,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "seconds": round(seconds, 3),
                "polars": pl.__version__,
                "threads": pl.thread_pool_size(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
