"""Each connector on real files, and each kind of unreadable file."""

import os
from pathlib import Path

import pytest

from assistant.index.registry import read_document, source_kind
from connectors import DocumentError
from connectors.folder import expand_paths
from tests.pdfs import write_encrypted_pdf, write_pdf


def test_plain_text_and_markdown(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("\ufeffPlain notes. Two sentences.", encoding="utf-8")
    doc = read_document(txt, "notes.txt")
    assert doc.text == "Plain notes. Two sentences." and doc.title == "notes"
    md = tmp_path / "guide.md"
    md.write_text("# Setup guide\n\nRun **make** then [the tests](http://x/y).\n\n```\ncode\n```\n"
                  "- item one\n")
    doc = read_document(md, "guide.md")
    assert doc.title == "Setup guide"
    assert "Run make then the tests." in doc.text
    assert "http://x" not in doc.text and "code" not in doc.text and "item one" in doc.text


def test_html_keeps_visible_text_only(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<html><head><title> My  page </title><style>p{}</style></head><body>"
                    "<p>First &amp; foremost.</p><script>var x=1;</script><p>Second.</p>"
                    "</body></html>")
    doc = read_document(page, str(page))
    assert doc.title == "My page"
    assert "First & foremost." in doc.text and "Second." in doc.text
    assert "var x" not in doc.text and "p{}" not in doc.text


def test_pdf_text_and_title(tmp_path):
    pdf = write_pdf(tmp_path / "report.pdf", ["Quarterly report.", "Revenue grew by ten percent."],
                    title="Q3 Report")
    doc = read_document(pdf, "report.pdf")
    assert doc.title == "Q3 Report"
    assert "Revenue grew by ten percent." in doc.text


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("latin1.txt", lambda p: p.write_bytes("caf\xe9 cr\xe8me".encode("latin-1")),
         "not valid UTF-8"),
        ("blob.md", lambda p: p.write_bytes(b"\x00\x01\x02binary\x00" * 50), "binary file"),
        ("locked.pdf", lambda p: write_encrypted_pdf(p, ["Top secret."]), "encrypted PDF"),
        ("broken.pdf", lambda p: p.write_bytes(b"%PDF-1.4\n1 0 obj garbage"),
         "broken or not a PDF"),
        ("fake.pdf", lambda p: p.write_text("just text"), "broken or not a PDF"),
        ("blank.pdf", lambda p: write_pdf(p, []), "no text layer"),
    ],
)
def test_unreadable_documents_get_specific_errors(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(DocumentError, match=message) as info:
        read_document(path, name)
    assert name in str(info.value)


def test_source_kinds():
    assert source_kind(Path("a.MD")) == "text"
    assert source_kind(Path("a.pdf")) == "text"
    assert source_kind(Path("talk.opus")) == "audio"
    assert source_kind(Path("image.png")) is None


def test_folder_walk_globs_and_symlink_loops(tmp_path):
    root = tmp_path / "corpus"
    (root / "drafts").mkdir(parents=True)
    (root / "sub").mkdir()
    for rel in ["a.md", "b.txt", "drafts/c.md", "sub/d.md", ".hidden.md"]:
        (root / rel).write_text("x")
    os.symlink(root, root / "sub" / "loop")  # a link back up must not recurse forever
    found = [f.source for f in expand_paths([str(root)])]
    assert found == [f"{root}/a.md", f"{root}/b.txt", f"{root}/drafts/c.md", f"{root}/sub/d.md"]
    only_md = [f.source for f in expand_paths([str(root)], include=["*.md"], exclude=["drafts/*"])]
    assert only_md == [f"{root}/a.md", f"{root}/sub/d.md"]
    explicit = list(expand_paths([str(root / "a.md"), "missing.txt"]))
    assert [f.explicit for f in explicit] == [True, True]
    assert explicit[1].source == "missing.txt"
