"""Document templates: ``templates/NAME.pdf`` + ``templates/NAME.yaml``, served read-only.

- ``spec``: what a template is (frozen dataclasses, defaults, ``TemplateError``);
- ``loader`` (with ``nodes``, ``fields``, ``pdfs``, ``anchors``): one YAML file → a
  ``Template`` or every error, each with its file and line;
- ``registry``: a folder loaded once at startup (``Registry.load``), broken files logged and
  skipped, and ``check`` for ``signbot templates check``;
- ``schemas`` / ``routes``: ``GET /api/v1/templates`` (Certyneo's ``TemplateList``) and
  ``GET /api/v1/templates/{id}``; ``cli``: the ``templates`` command group.

Deliberately no re-exports here: importing ``bot.templates.spec`` should not drag in the web
routes or the PDF machinery.
"""
