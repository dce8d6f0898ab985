"""Response categories from two time points' enhancing tumour: RANO 2010 (bidimensional) and RANO 2.0
(volumetric).

Imaging part only. RANO also asks for the corticosteroid dose, the clinical status, confirmation of a response
on a scan at least 4 weeks later, and a reader's judgement of non-enhancing (T2/FLAIR) progression and of
pseudoprogression after radiotherapy; software has none of these, so a category here is what the images
alone show, for a clinician to weigh, never the patient's response.

Thresholds (change of the current scan against the prior, which RANO would take as the baseline or nadir):

- RANO 2010 (Wen et al., J Clin Oncol 2010), on the sum of the products of perpendicular diameters of the
  measurable enhancing lesions (both diameters >= 10 mm, up to five): complete response = no enhancing disease
  left; partial response = a decrease of 50% or more; progression = an increase of 25% or more, or a new
  measurable enhancing lesion; otherwise stable.
- RANO 2.0 volumetric (Wen et al., J Clin Oncol 2023, taking the volumetric thresholds of Ellingson et al.,
  Neurotherapeutics 2017, that correspond to the bidimensional ones for a sphere): partial response = a
  decrease of 65% or more of the enhancing volume; progression = an increase of 40% or more; measurable
  enhancing disease = at least 1 ml.
"""

from __future__ import annotations

RANO_2010_RESPONSE = -50.0
"""Percent change of the sum of products at or below which RANO 2010 calls a partial response."""
RANO_2010_PROGRESSION = 25.0
"""Percent change of the sum of products at or above which RANO 2010 calls progression."""
RANO_2_RESPONSE = -65.0
"""Percent change of the enhancing volume at or below which RANO 2.0 (volumetric) calls a partial response."""
RANO_2_PROGRESSION = 40.0
"""Percent change of the enhancing volume at or above which RANO 2.0 (volumetric) calls progression."""
RANO_2_MEASURABLE_ML = 1.0
"""Smallest enhancing volume RANO 2.0's volumetric assessment counts as measurable disease."""

CATEGORIES = ("complete response", "partial response", "stable", "progression", "not assessable")

CAVEAT = (
    "These categories come from the images alone. A response assessment also needs what this software "
    "does not have: the corticosteroid dose, new or worse symptoms, confirmation on a later scan, and a "
    "reader's judgement of non-enhancing (T2/FLAIR) progression and of pseudoprogression after treatment."
)


def percent_change(prior: float, current: float) -> float | None:
    """``100 * (current - prior) / prior``, rounded to 0.1; None when the prior is 0 (no change is defined).

    Args:
        prior, current: the two measurements (any one unit, e.g. mm² or ml).
    """
    if prior <= 0:
        return None
    return round(100.0 * (float(current) - float(prior)) / float(prior), 1)


def _category(
    change: float | None,
    response: float,
    progression: float,
    *,
    any_now: bool,
    any_before: bool,
    new_measurable: int,
    measurable_before: bool,
    what: str,
) -> dict:
    if not any_before and not any_now:
        return {
            "category": "not assessable",
            "change_percent": None,
            "reason": "no enhancing tumour at either scan: the enhancing-tumour criteria do not apply",
        }
    if new_measurable:
        return {
            "category": "progression",
            "change_percent": change,
            "reason": f"{new_measurable} new measurable enhancing lesion(s)",
        }
    if any_before and not any_now:
        return {
            "category": "complete response",
            "change_percent": change,
            "reason": "no enhancing tumour left (RANO also asks for confirmation at 4 weeks and no steroids)",
        }
    if not measurable_before or change is None:
        return {
            "category": "stable",
            "change_percent": change,
            "reason": f"no measurable enhancing disease at the prior scan ({what}): only a new measurable "
            "lesion or the disappearance of all enhancement would change the category",
        }
    if change >= progression:
        return {
            "category": "progression",
            "change_percent": change,
            "reason": f"{what} up {change:+.1f}% (progression at {progression:+.0f}% or more)",
        }
    if change <= response:
        return {
            "category": "partial response",
            "change_percent": change,
            "reason": f"{what} {change:+.1f}% (partial response at {response:.0f}% or less)",
        }
    return {
        "category": "stable",
        "change_percent": change,
        "reason": f"{what} {change:+.1f}%, between {response:.0f}% and {progression:+.0f}%",
    }


def rano_2010(
    prior_sum_products: float,
    current_sum_products: float,
    *,
    prior_lesions: int,
    current_lesions: int,
    new_measurable: int = 0,
) -> dict:
    """RANO 2010 bidimensional category (imaging only).

    Args:
        prior_sum_products, current_sum_products: sums of the products of the measurable enhancing lesions
            (mm^2), as :func:`medseg3d.clinical.diameters.region_diameters` gives them.
        prior_lesions, current_lesions: enhancing lesions of any size above the lesion threshold.
        new_measurable: measurable enhancing lesions at the current scan with nothing at the prior one.

    Returns:
        ``{"category", "change_percent", "reason", "thresholds_percent"}``; ``category`` one of
        :data:`CATEGORIES` ("stable" for stable disease, as RANO names it).
    """
    change = percent_change(prior_sum_products, current_sum_products)
    out = _category(
        change,
        RANO_2010_RESPONSE,
        RANO_2010_PROGRESSION,
        any_now=current_lesions > 0,
        any_before=prior_lesions > 0,
        new_measurable=new_measurable,
        measurable_before=prior_sum_products > 0,
        what="sum of products",
    )
    return dict(
        out, thresholds_percent={"partial response": RANO_2010_RESPONSE, "progression": RANO_2010_PROGRESSION}
    )


def rano_2_volumetric(
    prior_ml: float, current_ml: float, *, prior_lesions: int, current_lesions: int, new_measurable: int = 0
) -> dict:
    """RANO 2.0 volumetric category (imaging only) from the enhancing tumour's volume.

    Args:
        prior_ml, current_ml: enhancing tumour volumes (ml).
        prior_lesions, current_lesions: enhancing lesions above the lesion threshold.
        new_measurable: measurable enhancing lesions at the current scan with nothing at the prior one.

    Returns:
        As :func:`rano_2010`, with the volumetric thresholds and ``measurable_ml``.
    """
    change = percent_change(prior_ml, current_ml)
    out = _category(
        change,
        RANO_2_RESPONSE,
        RANO_2_PROGRESSION,
        any_now=current_lesions > 0,
        any_before=prior_lesions > 0,
        new_measurable=new_measurable,
        measurable_before=prior_ml >= RANO_2_MEASURABLE_ML,
        what="enhancing volume",
    )
    return dict(
        out,
        thresholds_percent={"partial response": RANO_2_RESPONSE, "progression": RANO_2_PROGRESSION},
        measurable_ml=RANO_2_MEASURABLE_ML,
    )
