"""Ship the bulk job to a deployed stack: glue/job.py, the sluice library (and the contracts'
own transforms) as one zip for --extra-py-files, and the MariaDB JDBC driver for --extra-jars,
under s3://BUCKET/glue/, where template.yaml's BulkJob reads them.

    python glue/package.py --stack sluice [--region eu-west-1]   (make glue-package STACK=sluice)
    python glue/package.py --out dist/glue                        (build only)
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "layers" / "core" / "sluice"
CONTRACTS = ROOT / "contracts"
JAR = Path(os.environ.get("SLUICE_JDBC_JAR", "/usr/share/java/mariadb-java-client.jar"))
PREFIX = "glue/"


def library_zip() -> bytes:
    """sluice/ (sources and schemas) and contracts/*.py at the zip's root, as Glue imports them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(LIBRARY.rglob("*")):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and path.suffix in (".py", ".json")
            ):
                z.write(path, Path("sluice") / path.relative_to(LIBRARY))
        for path in sorted(CONTRACTS.glob("*.py")) if CONTRACTS.is_dir() else []:
            z.write(path, path.name)
    return buf.getvalue()


def artifacts() -> dict[str, bytes]:
    """{object name under glue/: its bytes}."""
    if not JAR.exists():
        raise SystemExit(f"glue-package: no JDBC driver at {JAR}: run scripts/ensure-spark.sh")
    return {
        "job.py": (ROOT / "glue" / "job.py").read_bytes(),
        "sluice.zip": library_zip(),
        "mariadb-java-client.jar": JAR.read_bytes(),
    }


def staging_bucket(stack: str, region: str | None) -> str:
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    found = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    if "StagingBucketName" not in found:
        raise SystemExit(f"glue-package: stack {stack} has no StagingBucketName output")
    return found["StagingBucketName"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="the deployed stack whose bucket gets the files")
    parser.add_argument("--region", default=None)
    parser.add_argument("--out", help="write the files to this folder instead of S3")
    args = parser.parse_args(argv)
    if not args.stack and not args.out:
        parser.error("give --stack NAME (upload) or --out DIR (build only)")
    files = artifacts()
    if args.out:
        out = Path(args.out)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name, body in files.items():
            (out / name).write_bytes(body)
        print(f"glue-package: {', '.join(files)} in {out}")
        return 0
    import boto3

    bucket = staging_bucket(args.stack, args.region)
    s3 = boto3.client("s3", region_name=args.region)
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=body)
        print(f"glue-package: s3://{bucket}/{PREFIX}{name} ({len(body):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
