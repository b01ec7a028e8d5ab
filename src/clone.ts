import rfdc from 'rfdc';

/**
 * A deep copy of plain data (session state, variables): several times faster than
 * `structuredClone`, which matters because every turn copies its session's state a few times.
 * Dates, Maps and Sets are copied too; cycles are not supported (state is JSON anyway).
 */
export const deepCopy: <T>(value: T) => T = rfdc();
