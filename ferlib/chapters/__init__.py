"""Support code that one chapter defines (as d2l tags its library functions "Defined in chapter ...").

Each module says which chapter it belongs to; library code lower down never imports these.
"""
