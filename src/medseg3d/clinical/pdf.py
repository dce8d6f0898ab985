"""The report as a PDF (A4), drawn with matplotlib's PDF backend: no browser, no network, fonts embedded.

The same content as the HTML page, in the same order: patient and study, findings, volumes and diameters,
location, pictures, quality checks, and a short technical record (model, steps and their seconds).
"""

from __future__ import annotations

import io
import textwrap

from .summary import TITLE, quality_sentences, size_rows, summary_sentences

_PAGE = (8.27, 11.69)  # A4 in inches
_MARGIN = 0.06
_LINE = 0.0165  # one line of 9 pt text, as a fraction of the page height


class _Writer:
    """Text flowing down A4 pages; a new page when the current one is full."""

    def __init__(self, pdf):
        self.pdf, self.fig, self.y = pdf, None, 0.0

    def _page(self):
        import matplotlib.pyplot as plt

        if self.fig is not None:
            self.pdf.savefig(self.fig)
            plt.close(self.fig)
        self.fig = plt.figure(figsize=_PAGE)
        self.y = 1 - _MARGIN

    def need(self, height: float):
        if self.fig is None or self.y - height < _MARGIN:
            self._page()

    def text(
        self,
        line: str,
        size: float = 9,
        weight: str = "normal",
        colour: str = "#222",
        indent: float = 0.0,
        width: int = 112,
    ):
        for part in textwrap.wrap(line, width=width) or [""]:
            self.need(_LINE * size / 9)
            self.fig.text(
                _MARGIN + indent, self.y, part, fontsize=size, fontweight=weight, color=colour, va="top"
            )
            self.y -= _LINE * size / 9

    def heading(self, title: str):
        self.need(4 * _LINE)
        self.y -= 0.6 * _LINE
        self.text(title, size=12, weight="bold")
        self.y -= 0.2 * _LINE

    def table(self, header: list, rows: list):
        height = _LINE * (len(rows) + 1) * 1.25
        self.need(height)
        ax = self.fig.add_axes([_MARGIN, self.y - height, 1 - 2 * _MARGIN, height])
        ax.axis("off")
        text = [[str(c) for c in r] for r in rows] or [["-"] * len(header)]
        longest = [max(len(str(h)), *(len(r[k]) for r in text)) + 2 for k, h in enumerate(header)]
        # columns as wide as their text
        cells = ax.table(
            cellText=text,
            colLabels=header,
            loc="upper left",
            cellLoc="left",
            bbox=[0, 0, 1, 1],
            colWidths=[n / sum(longest) for n in longest],
        )
        cells.auto_set_font_size(False)
        cells.set_fontsize(7.5)
        for (r, _), cell in cells.get_celld().items():
            cell.set_edgecolor("#bbbbbb")
            if r == 0:
                cell.set_facecolor("#eeeeee")
        self.y -= height + 0.5 * _LINE

    def images(self, pngs: list[bytes]):
        import matplotlib.image as mpimg

        height = 0.27
        self.need(height)
        width = (1 - 2 * _MARGIN) / max(len(pngs), 1)
        for k, png in enumerate(pngs):
            ax = self.fig.add_axes([_MARGIN + k * width, self.y - height, width * 0.98, height])
            ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
            ax.axis("off")
        self.y -= height + 0.5 * _LINE

    def close(self):
        import matplotlib.pyplot as plt

        if self.fig is not None:
            self.pdf.savefig(self.fig)
            plt.close(self.fig)


def _who(report: dict) -> list[str]:
    study = report.get("study")
    if report.get("anonymised"):
        return ["Patient and study details left out (--anonymise)."]
    if not study:
        return ["The input held no patient details (image files, not DICOM)."]
    p, s = study["patient"], study["study"]
    lines = [
        "   ".join(
            f"{k}: {v}"
            for k, v in (
                ("Patient", p.get("name")),
                ("ID", p.get("id")),
                ("Born", p.get("birth_date")),
                ("Sex", p.get("sex")),
            )
            if v
        ),
        "   ".join(
            f"{k}: {v}"
            for k, v in (
                ("Study date", s.get("date")),
                ("Study", s.get("description")),
                ("Accession", s.get("accession")),
            )
            if v
        ),
    ]
    series = "; ".join(
        f"{m}: {i.get('description') or 'no description'}"
        + (f" (series {i['number']})" if i.get("number") else "")
        for m, i in study["series"].items()
    )
    return [line for line in lines if line] + [f"Series used: {series}."]


def render_pdf(report: dict, pictures: dict[str, bytes]) -> bytes:
    """The report (:func:`medseg3d.clinical.report.case_report`) as PDF bytes (A4, one or more pages).

    Args:
        report: the report dict.
        pictures: {view: PNG bytes} of the overlays.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": TITLE, "Creator": "medseg3d"}) as pdf:
        w = _Writer(pdf)
        w.text(TITLE, size=15, weight="bold")
        for line in _who(report):
            w.text(line)
        w.text(
            "Automatic segmentation for research use, not a diagnosis: a radiologist reviews it before any "
            "clinical use.",
            size=8,
            colour="#666",
        )
        w.heading("Findings")
        for line in summary_sentences(report):
            w.text("- " + line)
        w.heading("Volumes and diameters")
        rows = [list(row) for row in size_rows(report)]
        w.table(
            ["region", "ml", "lesions", "axial x perp. (mm)", "product (mm²)", "measurable", "3D (mm)"], rows
        )
        loc = report.get("location") or {}
        if loc.get("available"):
            w.heading("Location")
            rows = [
                [
                    r,
                    f"{e['hemisphere']} (R {e['side_share']['right']:.0%})",
                    "yes" if e["crosses_midline"] else "no",
                    ", ".join(f"{k} {e['lobes'][k]:.0%}" for k in e["lobes_involved"]) or "none",
                    ", ".join(e["deep_structures"]) or "none",
                    "yes" if e["ventricles"]["contact"] else "no",
                    "yes" if e["cortex"]["contact"] else "no",
                ]
                for r, e in loc["regions"].items()
                if e.get("hemisphere")
            ]
            w.table(["region", "side", "midline", "lobes", "deep", "ventricles", "cortex"], rows)
        if pictures:
            w.heading("Pictures")
            w.text(
                f"Through the largest lesion, over {report.get('picture_channel') or 'no image'}; the "
                "patient's right on the viewer's left"
                + (
                    "; the last: the axial slice where the RANO diameter (cyan) was measured."
                    if "RANO" in pictures
                    else "."
                ),
                size=8,
                colour="#666",
            )
            w.images(list(pictures.values()))
        w.heading("Quality checks")
        for line in quality_sentences(report):
            w.text("- " + line, colour="#8a5a00" if line in report["warnings"] else "#222")
        w.heading("Technical record")
        card = report.get("model_card") or {}
        w.text(
            "Model: " + ", ".join(f"{k} {card[k]}" for k in ("name", "version", "kind") if k in card), size=8
        )
        for step in report.get("preprocessing", []):
            w.text(
                f"{step.get('step', step.get('name', ''))}: "
                + ", ".join(
                    f"{k} {v}"
                    for k, v in step.items()
                    if k not in ("step", "name") and not isinstance(v, (dict, list))
                ),
                size=8,
                indent=0.01,
                width=120,
            )
        w.text(
            "The HTML report and the case's JSON hold the full record (transforms, timings, model card).",
            size=8,
            colour="#666",
        )
        w.close()
    return buffer.getvalue()
