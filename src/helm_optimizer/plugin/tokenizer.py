"""An offline tokenizer for HELM deployments that have no tokenizer files on this machine.

It splits text into words, single punctuation marks and runs of white space, which tracks BPE
token counts to within a small factor. Decoding joins the pieces, so truncation is lossless.
It needs no download, so HELM's window service and efficiency metrics work offline.
"""

from __future__ import annotations

import re
import threading

from helm.common.tokenization_request import (
    DecodeRequest,
    DecodeRequestResult,
    TokenizationRequest,
    TokenizationRequestResult,
    TokenizationToken,
)
from helm.tokenizers.tokenizer import Tokenizer

__all__ = ["APPROX_TOKENIZER_NAME", "ApproximateTokenizer", "approximate_tokens"]

APPROX_TOKENIZER_NAME = "helm-optimizer/approx"
_PIECE_RE = re.compile(r"\w{1,6}|[^\w\s]|\s+", re.UNICODE)


def approximate_tokens(text: str) -> list[str]:
    return _PIECE_RE.findall(text)


class ApproximateTokenizer(Tokenizer):  # type: ignore[misc]
    def tokenize(self, request: TokenizationRequest) -> TokenizationRequestResult:
        pieces = approximate_tokens(request.text)
        if request.truncation:
            pieces = pieces[: request.max_length]
        if request.encode:
            # Integer ids index a process-wide table of pieces, so decode round-trips.
            tokens = [TokenizationToken(_encode(piece)) for piece in pieces]
        else:
            tokens = [TokenizationToken(piece) for piece in pieces]
        return TokenizationRequestResult(success=True, cached=False, tokens=tokens, text=request.text)

    def decode(self, request: DecodeRequest) -> DecodeRequestResult:
        return DecodeRequestResult(success=True, cached=False, text="".join(_decode(t) for t in request.tokens))


_ids: dict[str, int] = {}
_pieces: list[str] = []
_lock = threading.Lock()


def _encode(piece: str) -> int:
    found = _ids.get(piece)
    if found is not None:
        return found
    with _lock:
        found = _ids.get(piece)
        if found is None:
            found = len(_pieces)
            _pieces.append(piece)
            _ids[piece] = found
        return found


def _decode(token: int | str) -> str:
    if isinstance(token, str):
        return token
    return _pieces[token] if 0 <= token < len(_pieces) else ""
