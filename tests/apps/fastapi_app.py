"""A FastAPI application for tests/e2e/test_asgi_frameworks.py, in the spec's validator:
JSON endpoints with a pydantic model (and its validation errors, 422), an upload
(``UploadFile``, multipart) and a dependency."""

from __future__ import annotations

import hashlib
from typing import Annotated

from asgi_validate import validate
from fastapi import Depends, FastAPI, File, Query, UploadFile
from pydantic import BaseModel, Field

app = FastAPI()


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


def pagination(limit: Annotated[int, Query(le=100)] = 10, offset: int = 0) -> dict[str, int]:
    return {"limit": limit, "offset": offset}


@app.get("/items")
async def list_items(page: Annotated[dict[str, int], Depends(pagination)]) -> dict[str, object]:
    return {"items": [], "page": page}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, object]:
    return {"created": item.model_dump(), "total": round(item.price * 1.2, 2)}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()]) -> dict[str, object]:
    data = await file.read()
    return {
        "filename": file.filename,
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": file.content_type,
    }


application = validate(app)
