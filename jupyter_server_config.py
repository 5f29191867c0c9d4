# The Jupyter server's settings for `./kit lab` (passed with --config=jupyter_server_config.py).
# One entry per chapter in the file browser: a jupytext `.py` twin is left out of a folder's
# listing when its `.ipynb` sits beside it (notebooks/, exercises/, solutions/); the twin stays
# on disk and in git, and jupytext still saves both.  See ferlib/labs/contents.py.
c = get_config()  # noqa: F821
c.ServerApp.contents_manager_class = "ferlib.labs.contents.TwinHidingContentsManager"
