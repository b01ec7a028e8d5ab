export { splitText } from '../../../src/text.ts';
