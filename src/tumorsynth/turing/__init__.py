"""The Visual Turing Test as a tool: build a blinded reader study of real and synthetic tumors
(:mod:`~tumorsynth.turing.study`), serve it to radiologists in a browser
(:mod:`~tumorsynth.turing.app`, answers in :mod:`~tumorsynth.turing.store`) and score it
(:mod:`~tumorsynth.turing.score`). The folder layout all three share is in
:mod:`~tumorsynth.turing.layout`.

The web stack (FastAPI, uvicorn) is imported only by ``serve``.
"""
