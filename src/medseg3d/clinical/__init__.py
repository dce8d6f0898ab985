"""What a clinician reads about a segmentation: diameters (RANO), location, follow-up comparison, the report.

Modules here build on ``predict`` outputs and the label schemes; nothing below this tier imports them.
"""
