"""Claims in free text checked against what the analysers measured (captions and dialogue turns).

``extract`` reads claims from text, ``heard`` gathers a clip's measurements with their confidences,
``check`` gives each claim a verdict (supported / contradicted / unverifiable) with its evidence and a record
its consistency score, and ``policy`` turns verdicts into the writers' rejections. The same code checks every
text backend: the template and grounded writers' own text must pass it too.
"""
