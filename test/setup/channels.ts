// Every test file's process knows the hub's channels, as the CLI's does: the registration list.
import '../../adapters/index.ts';
