"""The pure core: names, configuration and policy, what a process asks for (plan) and the Job it becomes, what a
Job's state means (outcome), what to do next (decide), status conditions and capabilities. No I/O library, no
asyncio: every function here is a function of its arguments, tested on plain data."""
