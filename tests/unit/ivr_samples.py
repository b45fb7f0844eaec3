"""Flow texts and names shared by the IVR tests. Line numbers in FLOW are asserted by the tests:
line 3 is 'welcome', 8 'sales', 9 'bye'."""

from callcenter.config import PROJECT_DIR

MAIN = PROJECT_DIR / "ivr_flows" / "main.yaml"
QUEUES = {"sales", "support"}
MENU_PROMPTS = ("hello", "for", "digits/1", "for", "digits/2")

FLOW = """\
start: welcome
nodes:
  welcome:
    type: menu
    prompts: [hello, digits/1]
    options: {"1": sales, "2": bye}
    default: sales
  sales: {type: queue, queue: sales}
  bye: {type: hangup, prompts: [vm-goodbye]}
"""
