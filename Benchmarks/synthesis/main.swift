print("bench-synthesis: not written yet")
