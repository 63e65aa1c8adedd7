# Sphinx configuration of the docs site: `python tools/docs.py --html` renders the processed notebooks with it.
project = 'fastmix'
html_title = 'fastmix'
copyright = 'fastmix developers'
extensions = ['myst_nb']
myst_enable_extensions = ['attrs_block']  # no math: MathJax would need the network; formulas are plain text
nb_execution_mode = 'off'               # tools/docs.py has executed every notebook (nbdev-test's runner)
nb_output_stderr = 'remove'             # warnings are not documentation
nb_render_markdown_format = 'myst'      # Markdown() outputs (the quality tables) as MyST: tables need more than CommonMark
html_theme = 'furo'
html_static_path = ['assets']
html_css_files = ['extra.css']
html_copy_source = False                # no _sources/*.ipynb copies
html_show_sourcelink = False
suppress_warnings = ['myst.header']     # nbdev's show_doc headings are h3 under the page's h1
exclude_patterns = ['_build']
