"""Detection: the EMIT matched filter, plume masks, TROPOMI hotspots, OCO-2 peaks, candidate merge."""
