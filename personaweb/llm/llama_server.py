"""The embedded model's server: llama-cpp-python's own (`python -m llama_cpp.server`), with one
fix applied before it starts.

llama-cpp-python 0.3.36 turns a JSON schema into a llama.cpp grammar, writing each constant
(an `enum` or `const` string) as a grammar literal. It escapes quotes and line breaks there but
not backslashes, and the JSON text of a string with a quote in it holds one (`"he said \\"no\\""`).
So a schema whose enum holds such a text (a guided orchestrator relaying a reply that quotes
someone) became a grammar llama.cpp cannot parse, and the server crashed with SIGSEGV sampling
with the grammar it never built: the whole model gone for every session. Escaping backslashes
as well makes the literal match the JSON text exactly.

    python -m personaweb.llm.llama_server --model ... (llama_cpp.server's own flags)
"""

from __future__ import annotations

import re
import runpy


def fix_grammar_literals() -> None:
    """Make llama-cpp-python's schema-to-grammar literals escape backslashes too."""
    from llama_cpp import llama_grammar

    llama_grammar.GRAMMAR_LITERAL_ESCAPE_RE = re.compile(r'[\r\n"\\]')
    llama_grammar.GRAMMAR_LITERAL_ESCAPES = {
        "\r": "\\r",
        "\n": "\\n",
        '"': '\\"',
        "\\": "\\\\",
    }


if __name__ == "__main__":
    fix_grammar_literals()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
