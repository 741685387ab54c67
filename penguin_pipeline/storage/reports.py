"""Publishing the rendered report beyond the local reports folder: to another folder or an S3 prefix.

(To keep it versioned beside the model instead, pin it: boards.pin_report(board, path).)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import s3


def publish_report(path: Path | str, url: str, endpoint_url: str | None = None) -> str:
    """Copy the report file under its own name to a folder or an s3://bucket/prefix; returns where.

    Readers never see half a report: one PUT on S3, a temp name then a rename on folders.
    """
    path = Path(path)
    if s3.is_s3_url(url):
        location = s3.S3Location.parse(url, endpoint_url)
        key = location.key(path.name)
        content_type = "text/html; charset=utf-8" if path.suffix == ".html" else "application/octet-stream"
        with s3.guard(location, f"publishing the report to s3://{location.bucket}/{key}"):
            with open(path, "rb") as body:
                s3.client(endpoint_url).put_object(Bucket=location.bucket, Key=key, Body=body,
                                                   ContentType=content_type)
        return f"s3://{location.bucket}/{key}"
    target = Path(url) / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name("." + target.name + ".partial")
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return str(target)
