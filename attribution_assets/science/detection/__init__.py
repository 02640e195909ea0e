"""Detection: scans of every instrument for emission-source candidates, and their merge into events.

* ``matched_filter``: the EMIT CH4 matched filter (screening, column statistics, shrinkage, the filter,
  the orthorectified scene-level maps);
* ``plume_mask``: significance of smoothed enhancement maps and the plume mask of IME quantification;
* ``plume_scan``: EMIT plume templates, the detection rule and ``scan_emit_plumes``;
* ``hotspots``: TROPOMI XCH4 hotspots (``scan_tropomi_hotspots``);
* ``peaks`` and ``track_fit``: OCO-2 along-track XCO2 peaks (``scan_oco2_peaks``) and their fits;
* ``candidates``: scan candidates merged into detection events (no file I/O: the scans take carriers);
* ``sphere``: great-circle distances shared by the scans and the merge.
"""
