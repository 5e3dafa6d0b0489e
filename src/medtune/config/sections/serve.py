from pydantic import Field

from .base import Section


class ServeSection(Section):
    host: str = Field("127.0.0.1", description="Bind address (loopback by default: keep patient data on site).")
    port: int = Field(8000, ge=1, le=65535, description="Port.")
    model: str | None = Field(None, description="Run folder, merged folder or GGUF to serve.")
