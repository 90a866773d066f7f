"""Generation: batched, length-sorted generation (batched), a run's typed settings and resume key (settings), and a
whole run shared by the processes of a launch (run)."""
